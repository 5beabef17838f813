//! Diagnostics: what every loader and the converter report (pure).
//!
//! A diagnostic names the file, the position, the Resource ID (or compose
//! service) and the rule broken, so a user can fix the input without
//! reading our code. Rendering with source snippets happens in `cli`.

use std::fmt;

use crate::yaml::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the rule broken, e.g. `kom-duplicate-id`.
    pub rule: &'static str,
    pub message: String,
    /// Path of the file, relative to the project root, with `/` separators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_span")]
    pub span: Option<Span>,
    /// The Resource ID or compose element the problem belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

fn ser_span<S: serde::Serializer>(span: &Option<Span>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    match span {
        None => s.serialize_none(),
        Some(sp) => {
            let mut st = s.serialize_struct("Span", 2)?;
            st.serialize_field("line", &sp.line)?;
            st.serialize_field("column", &sp.col)?;
            st.end()
        }
    }
}

impl Diagnostic {
    pub fn new(severity: Severity, rule: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            rule,
            message: message.into(),
            file: None,
            span: None,
            resource: None,
            help: None,
        }
    }

    pub fn error(rule: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, rule, message)
    }

    pub fn warning(rule: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, rule, message)
    }

    pub fn info(rule: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, rule, message)
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn at(mut self, file: impl Into<String>, span: Span) -> Self {
        self.file = Some(file.into());
        self.span = Some(span);
        self
    }

    pub fn with_span(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(span) = &self.span {
                write!(f, ":{}:{}", span.line, span.col)?;
            }
            write!(f, ": ")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(f, "{sev}[{}]: {}", self.rule, self.message)?;
        if let Some(r) = &self.resource {
            write!(f, " (in {r})")?;
        }
        if let Some(h) = &self.help {
            write!(f, "; help: {h}")?;
        }
        Ok(())
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_rule_resource_and_help() {
        let d = Diagnostic::error("kom-missing-parent", "parent \"/ws/a\" does not exist")
            .at(
                ".kompox/kom/p.yml",
                Span {
                    line: 3,
                    col: 5,
                    start: 0,
                    end: 0,
                },
            )
            .resource("/ws/a/prv/b")
            .help("define the Workspace first");
        assert_eq!(
            d.to_string(),
            ".kompox/kom/p.yml:3:5: error[kom-missing-parent]: parent \"/ws/a\" does not exist (in /ws/a/prv/b); help: define the Workspace first"
        );
    }
}
