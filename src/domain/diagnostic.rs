//! Problems found in input, as data.
//!
//! Broken input is not an early `Err`: readers and validators return a
//! `Vec<Diagnostic>` so that one run reports every problem at once. Each
//! diagnostic names the file (relative to the tenant tree), and where there
//! is one the line and the field.

use std::fmt;

use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks plan and apply.
    Error,
    /// Reported, does not block.
    Warning,
}

/// One problem in one place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File path relative to the tree root, e.g. `agents/support-bot.yaml`.
    pub file: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The field, e.g. `spec.tools[1]`, when the problem is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A stable short code, e.g. `dangling-reference`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What probably fixes it (`did you mean `crm-lookup`?`), when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error in `file`.
    pub fn error(file: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line: None,
            field: None,
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning in `file`.
    pub fn warning(
        file: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, code, message)
        }
    }

    /// The same diagnostic, at `line`.
    pub fn at_line(mut self, line: Option<u64>) -> Self {
        self.line = line;
        self
    }

    /// The same diagnostic, about `field`.
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same diagnostic, with a hint (none is kept as none).
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Whether this diagnostic blocks.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{} [{}]", self.message, self.code)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// Find the 1-based line of a field in YAML text, for a diagnostic.
///
/// `field` is a dotted path such as `spec.tools[1]` or `metadata.name`; the
/// last named segment is searched as a key, and `value` (when given) is
/// searched from there on. This is a locator for messages, not a parser.
pub fn locate(text: &str, field: &str, value: Option<&str>) -> Option<u64> {
    let key = field
        .rsplit('.')
        .map(|seg| seg.split('[').next().unwrap_or(seg))
        .find(|seg| !seg.is_empty())?;
    let needle = format!("{key}:");
    let mut start = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ");
        if t.starts_with(&needle) {
            start = Some(i);
            break;
        }
    }
    let start = start?;
    if let Some(v) = value {
        for (i, line) in text.lines().enumerate().skip(start) {
            if line.contains(v) {
                return Some(i as u64 + 1);
            }
        }
    }
    Some(start as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_key_then_value() {
        let text = "metadata:\n  name: a\nspec:\n  tools:\n  - x\n  - missing\n";
        assert_eq!(locate(text, "spec.tools[1]", Some("missing")), Some(6));
        assert_eq!(locate(text, "metadata.name", None), Some(2));
    }
}
