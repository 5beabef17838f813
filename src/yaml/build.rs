//! Builds [`Node`] trees from parser events under [`Limits`].

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as PSpan};

use super::node::{Node, Span, Value};

/// Budgets applied while building a tree.
///
/// `max_nodes` counts nodes *after* alias expansion, which is what stops a
/// "billion laughs" document: ten nested aliases of ten each would expand to
/// 10^10 nodes, and we give up at the first node past the budget.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 2 * 1024 * 1024,
            max_depth: 64,
            max_nodes: 200_000,
            max_documents: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub span: Span,
    /// The rule broken, for diagnostics (`yaml-syntax`, `yaml-limit`, ...).
    pub rule: &'static str,
}

/// Parses every document of a YAML stream. Empty documents are returned as
/// null scalars so that document indices match what users count.
pub fn parse_documents(text: &str, limits: &Limits) -> Result<Vec<Node>, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError {
            message: format!(
                "file is {} bytes, over the limit of {} bytes",
                text.len(),
                limits.max_bytes
            ),
            span: Span::default(),
            rule: "yaml-limit",
        });
    }
    let offsets = CharOffsets::new(text);
    let mut builder = Builder {
        limits,
        offsets: &offsets,
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| scan_error(&e, &offsets))?;
        match event {
            Event::DocumentStart(_) => {
                if docs.len() >= limits.max_documents {
                    return Err(YamlError {
                        message: format!("more than {} YAML documents", limits.max_documents),
                        span: offsets.span(&span),
                        rule: "yaml-limit",
                    });
                }
                builder.anchors.clear();
                let root = builder.document(&mut parser, span)?;
                docs.push(root);
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(docs)
}

struct Builder<'a> {
    limits: &'a Limits,
    offsets: &'a CharOffsets,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

/// A container under construction on the explicit stack (no recursion, so
/// deep nesting cannot overflow the thread's stack).
enum Frame {
    Seq {
        node: Node,
        anchor: usize,
    },
    Map {
        node: Node,
        anchor: usize,
        key: Option<Node>,
    },
}

impl Builder<'_> {
    fn document<'i>(
        &mut self,
        parser: &mut Parser<'i, saphyr_parser::StrInput<'i>>,
        start: PSpan,
    ) -> Result<Node, YamlError> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Node> = None;
        while let Some(event) = parser.next_event() {
            let (event, span) = event.map_err(|e| scan_error(&e, self.offsets))?;
            let complete: Option<(Node, usize)> = match event {
                Event::DocumentEnd => break,
                Event::Scalar(text, style, anchor, tag) => {
                    self.bump(1, &span)?;
                    let node = Node {
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain: style == ScalarStyle::Plain,
                        },
                        span: self.offsets.span(&span),
                        tag: tag.map(|t| t.suffix.clone()),
                    };
                    Some((node, anchor))
                }
                Event::Alias(id) => {
                    let Some(count) = self.anchors.get(&id).map(Node::count) else {
                        return Err(self.err(
                            "alias refers to an unknown anchor",
                            &span,
                            "yaml-syntax",
                        ));
                    };
                    self.bump(count, &span)?;
                    let mut node = self.anchors[&id].clone();
                    node.span = self.offsets.span(&span);
                    Some((node, 0))
                }
                Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                    self.bump(1, &span)?;
                    if stack.len() >= self.limits.max_depth {
                        return Err(self.err(
                            &format!("nesting deeper than {} levels", self.limits.max_depth),
                            &span,
                            "yaml-limit",
                        ));
                    }
                    let is_seq = matches!(event, Event::SequenceStart(..));
                    let node = Node {
                        value: if is_seq {
                            Value::Seq(Vec::new())
                        } else {
                            Value::Map(Vec::new())
                        },
                        span: self.offsets.span(&span),
                        tag: tag.as_ref().map(|t| t.suffix.clone()),
                    };
                    stack.push(if is_seq {
                        Frame::Seq { node, anchor }
                    } else {
                        Frame::Map {
                            node,
                            anchor,
                            key: None,
                        }
                    });
                    None
                }
                Event::SequenceEnd => match stack.pop() {
                    Some(Frame::Seq { mut node, anchor }) => {
                        node.span.end = self.offsets.span(&span).end.max(node.span.start);
                        Some((node, anchor))
                    }
                    _ => return Err(self.err("unbalanced sequence", &span, "yaml-syntax")),
                },
                Event::MappingEnd => match stack.pop() {
                    Some(Frame::Map {
                        mut node, anchor, ..
                    }) => {
                        node.span.end = self.offsets.span(&span).end.max(node.span.start);
                        apply_merge_keys(&mut node)?;
                        Some((node, anchor))
                    }
                    _ => return Err(self.err("unbalanced mapping", &span, "yaml-syntax")),
                },
                Event::StreamEnd
                | Event::StreamStart
                | Event::Nothing
                | Event::DocumentStart(_) => {
                    break;
                }
            };
            let Some((node, anchor)) = complete else {
                continue;
            };
            if anchor != 0 {
                self.anchors.insert(anchor, node.clone());
            }
            match stack.last_mut() {
                None => {
                    root = Some(node);
                }
                Some(Frame::Seq { node: parent, .. }) => {
                    if let Value::Seq(items) = &mut parent.value {
                        items.push(node);
                    }
                }
                Some(Frame::Map {
                    node: parent, key, ..
                }) => match key.take() {
                    None => {
                        if !node.is_scalar() {
                            return Err(YamlError {
                                message: "mapping keys must be plain strings".into(),
                                span: node.span,
                                rule: "yaml-syntax",
                            });
                        }
                        *key = Some(node);
                    }
                    Some(k) => {
                        if let Value::Map(entries) = &mut parent.value {
                            let name = k.scalar_text().unwrap_or_default();
                            if name != "<<"
                                && let Some((first, _)) = entries
                                    .iter()
                                    .find(|(e, _)| e.scalar_text().as_deref() == Some(&name))
                            {
                                return Err(YamlError {
                                    message: format!(
                                        "duplicate key \"{name}\" (first defined at line {})",
                                        first.span.line
                                    ),
                                    span: k.span,
                                    rule: "yaml-duplicate-key",
                                });
                            }
                            entries.push((k, node));
                        }
                    }
                },
            }
        }
        Ok(root.unwrap_or_else(|| Node {
            value: Value::Scalar {
                text: String::new(),
                plain: true,
            },
            span: self.offsets.span(&start),
            tag: None,
        }))
    }

    fn bump(&mut self, n: usize, span: &PSpan) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(self.err(
                &format!(
                    "document expands to more than {} nodes (aliases are expanded; is this an anchor bomb?)",
                    self.limits.max_nodes
                ),
                span,
                "yaml-limit",
            ));
        }
        Ok(())
    }

    fn err(&self, message: &str, span: &PSpan, rule: &'static str) -> YamlError {
        YamlError {
            message: message.to_string(),
            span: self.offsets.span(span),
            rule,
        }
    }
}

/// Applies YAML 1.1 merge keys: `<<: *base` or `<<: [*a, *b]`. Keys written
/// in the mapping itself win; among merged sources the first wins.
fn apply_merge_keys(node: &mut Node) -> Result<(), YamlError> {
    let Value::Map(entries) = &mut node.value else {
        return Ok(());
    };
    if !entries
        .iter()
        .any(|(k, _)| matches!(&k.value, Value::Scalar { text, plain: true } if text == "<<"))
    {
        return Ok(());
    }
    let mut own = Vec::with_capacity(entries.len());
    let mut sources = Vec::new();
    for (k, v) in std::mem::take(entries) {
        if matches!(&k.value, Value::Scalar { text, plain: true } if text == "<<") {
            match &v.value {
                Value::Map(_) => sources.push(v),
                Value::Seq(items) => {
                    for item in items {
                        if !matches!(item.value, Value::Map(_)) {
                            return Err(YamlError {
                                message: "a merge key (<<) takes a mapping or a list of mappings"
                                    .into(),
                                span: item.span,
                                rule: "yaml-merge",
                            });
                        }
                        sources.push(item.clone());
                    }
                }
                _ => {
                    return Err(YamlError {
                        message: "a merge key (<<) takes a mapping or a list of mappings".into(),
                        span: v.span,
                        rule: "yaml-merge",
                    });
                }
            }
        } else {
            own.push((k, v));
        }
    }
    for source in sources {
        if let Value::Map(merged) = source.value {
            for (k, v) in merged {
                let name = k.scalar_text();
                if !own.iter().any(|(e, _)| e.scalar_text() == name) {
                    own.push((k, v));
                }
            }
        }
    }
    *entries = own;
    Ok(())
}

fn scan_error(e: &saphyr_parser::ScanError, offsets: &CharOffsets) -> YamlError {
    let m = e.marker();
    let too_deep = e.info().contains("recursion limit");
    YamlError {
        message: if too_deep {
            "nesting is too deep (recursion limit exceeded)".to_string()
        } else {
            e.info().to_string()
        },
        span: offsets.span_at(m.index(), m.line(), m.col()),
        rule: if too_deep {
            "yaml-limit"
        } else {
            "yaml-syntax"
        },
    }
}

/// Converts the parser's character positions into byte offsets.
struct CharOffsets {
    /// `None` for ASCII text, where characters and bytes coincide.
    byte_of_char: Option<Vec<u32>>,
    len: u32,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let byte_of_char = if text.is_ascii() {
            None
        } else {
            let mut v: Vec<u32> = text.char_indices().map(|(b, _)| b as u32).collect();
            v.push(text.len() as u32);
            Some(v)
        };
        CharOffsets {
            byte_of_char,
            len: text.len() as u32,
        }
    }

    fn byte(&self, char_index: usize) -> u32 {
        match &self.byte_of_char {
            None => (char_index as u32).min(self.len),
            Some(v) => v.get(char_index).copied().unwrap_or(self.len),
        }
    }

    fn span(&self, span: &PSpan) -> Span {
        Span {
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
            start: self.byte(span.start.index()),
            end: self.byte(span.end.index()),
        }
    }

    fn span_at(&self, index: usize, line: usize, col: usize) -> Span {
        let b = self.byte(index);
        Span {
            line: line as u32,
            col: col as u32 + 1,
            start: b,
            end: b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        parse_documents(text, &Limits::default()).unwrap().remove(0)
    }

    #[test]
    fn spans_are_one_based_lines_and_columns() {
        let doc = one("a: 1\nb:\n  c: hello\n");
        let c = doc.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.as_str(), Some("hello"));
        assert_eq!((c.span.line, c.span.col), (3, 6));
        assert_eq!(&"a: 1\nb:\n  c: hello\n"[c.span.range()], "hello");
    }

    #[test]
    fn merge_keys_keep_own_values_first() {
        let doc = one("base: &b {x: 1, y: 2}\nsvc:\n  <<: *b\n  y: 3\n");
        let svc = doc.get("svc").unwrap();
        assert_eq!(svc.get("x").unwrap().as_i64(), Some(1));
        assert_eq!(svc.get("y").unwrap().as_i64(), Some(3));
    }

    #[test]
    fn duplicate_keys_are_errors_naming_both_lines() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n", &Limits::default()).unwrap_err();
        assert_eq!(err.rule, "yaml-duplicate-key");
        assert_eq!(err.span.line, 3);
        assert!(err.message.contains("line 1"), "{}", err.message);
    }

    #[test]
    fn billion_laughs_is_rejected_by_the_node_budget() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let err = parse_documents(&text, &Limits::default()).unwrap_err();
        assert_eq!(err.rule, "yaml-limit");
        assert!(err.message.contains("anchor bomb"));
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = parse_documents(&text, &Limits::default()).unwrap_err();
        assert_eq!(err.rule, "yaml-limit");
    }

    #[test]
    fn tags_are_kept_without_the_bang() {
        let doc = one("ports: !reset []\nenv: !override {A: b}\n");
        assert_eq!(doc.get("ports").unwrap().tag.as_deref(), Some("reset"));
        assert_eq!(doc.get("env").unwrap().tag.as_deref(), Some("override"));
    }

    #[test]
    fn multibyte_text_has_byte_offsets() {
        let text = "name: \"héllo\"\nnext: wörld\n";
        let doc = one(text);
        let n = doc.get("next").unwrap();
        assert_eq!(&text[n.span.range()], "wörld");
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n", &Limits::default()).unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_null());
    }

    #[test]
    fn quoted_scalars_stay_strings_in_json() {
        let doc = one("a: \"1\"\nb: 1\nc: true\nd: ~\n");
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": "1", "b": 1, "c": true, "d": null})
        );
    }
}
