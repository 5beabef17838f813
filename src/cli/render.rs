//! Diagnostics on stderr: errors with a source snippet (as in UX.md),
//! warnings on one line each. Colour only on a terminal.

use std::io::IsTerminal;

use kompox::diag::{Diagnostic, Severity};
use kompox::source::FileTree;
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

/// A [`Diagnostic`] with its source text, in miette's terms.
#[derive(Debug)]
struct Report {
    message: String,
    rule: &'static str,
    severity: Severity,
    help: Option<String>,
    source: Option<NamedSource<String>>,
    span: Option<SourceSpan>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.rule))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            None, span,
        ))))
    }
}

fn handler() -> GraphicalReportHandler {
    if std::io::stderr().is_terminal() {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode())
    } else {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100)
    }
}

/// Prints diagnostics: errors in full, warnings and notes compactly.
pub fn diagnostics(diags: &[Diagnostic], tree: &FileTree) {
    let mut out = String::new();
    let handler = handler();
    for d in diags {
        if d.severity != Severity::Error {
            out.push_str(&d.to_string());
            out.push('\n');
            continue;
        }
        let source = d
            .file
            .as_ref()
            .and_then(|f| tree.read_text(f).ok().map(|t| (f, t)))
            .filter(|_| d.span.is_some());
        let mut message = match (&d.file, &d.span) {
            (Some(f), Some(s)) if source.is_none() => {
                format!("{f}:{}:{}: {}", s.line, s.col, d.message)
            }
            (Some(f), None) => format!("{f}: {}", d.message),
            _ => d.message.clone(),
        };
        if let Some(r) = &d.resource {
            message.push_str(&format!(" (in {r})"));
        }
        let report = Report {
            message,
            rule: d.rule,
            severity: d.severity,
            help: d.help.clone(),
            span: source.and(d.span).map(|s| SourceSpan::from(s.range())),
            source: source.map(|(f, t)| NamedSource::new(f, t.to_string())),
        };
        let mut buf = String::new();
        if handler.render_report(&mut buf, &report).is_err() {
            buf = d.to_string();
        }
        out.push_str(&buf);
        if !buf.ends_with('\n') {
            out.push('\n');
        }
    }
    eprint!("{out}");
}

/// Prints an error that has no source position.
pub fn error(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}
