//! Output: data on stdout, status and hints on stderr, colour only where wanted.

use std::io::{IsTerminal, Write};

use similar::{ChangeTag, TextDiff};

use super::Format;
use crate::domain::answer::ErrorAnswer;
use crate::domain::diagnostic::{Diagnostic, Severity};
use crate::domain::plan::{ActionKind, FieldChange, Plan};

/// Where and how the CLI prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The chosen format.
    pub format: Format,
    color_out: bool,
    color_err: bool,
    /// Whether stderr is a terminal (progress bars).
    pub err_tty: bool,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

impl Output {
    /// Output for `format`, looking at the terminal and `NO_COLOR`.
    pub fn new(format: Format) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            format,
            color_out: !no_color && std::io::stdout().is_terminal(),
            color_err: !no_color && std::io::stderr().is_terminal(),
            err_tty: std::io::stderr().is_terminal(),
        }
    }

    /// Whether the output is JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    fn paint(&self, on: bool, style: &str, s: &str) -> String {
        if on {
            format!("{style}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    /// Style for stdout.
    pub fn style(&self, style: Style, s: &str) -> String {
        self.paint(self.color_out, style.code(), s)
    }

    /// Print data to stdout.
    pub fn data(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        if !s.ends_with('\n') {
            let _ = o.write_all(b"\n");
        }
    }

    /// Print a value as pretty JSON to stdout.
    pub fn json_value<T: serde::Serialize>(&self, v: &T) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => self.data(&s),
            Err(e) => self.status(&format!("cannot write JSON: {e}")),
        }
    }

    /// Print a status line to stderr.
    pub fn status(&self, s: &str) {
        eprintln!("{s}");
    }

    /// Print a hint to stderr.
    pub fn hint(&self, s: &str) {
        eprintln!("{} {s}", self.paint(self.color_err, BOLD, "hint:"));
    }

    /// Print a warning to stderr.
    pub fn warn(&self, s: &str) {
        eprintln!("{} {s}", self.paint(self.color_err, YELLOW, "warning:"));
    }

    /// Print an error (with its causes and any `hint:` lines) to stderr; with
    /// `--output json`, the error answer `{"error": {code, message, hint}}` on stdout.
    pub fn error(&self, e: &anyhow::Error, code: &str, hints: &[String]) {
        let msg = format!("{e:#}");
        let (text, mut hint_lines): (Vec<&str>, Vec<&str>) =
            msg.lines().partition(|l| !l.starts_with("hint: "));
        if self.json() {
            let mut answer = e
                .chain()
                .find_map(|c| c.downcast_ref::<Failure>())
                .map(|f| f.answer.clone())
                .unwrap_or_else(|| ErrorAnswer::new(code, text.join("\n"), None));
            let mut all: Vec<String> = answer.error.hint.take().into_iter().collect();
            all.extend(hint_lines.iter().map(|h| h["hint: ".len()..].to_string()));
            all.extend(hints.iter().cloned());
            let mut seen = std::collections::HashSet::new();
            all.retain(|h| seen.insert(h.clone()));
            answer.error.hint = (!all.is_empty()).then(|| all.join("\n"));
            self.json_value(&answer);
            return;
        }
        let mut lines = text.into_iter();
        if let Some(first) = lines.next() {
            eprintln!("{} {first}", self.paint(self.color_err, RED, "error:"));
        }
        for l in lines {
            eprintln!("{l}");
        }
        for h in hint_lines.drain(..) {
            self.hint(&h["hint: ".len()..]);
        }
        for h in hints {
            self.hint(h);
        }
    }

    /// Print diagnostics to stderr (text) — JSON callers print them as data.
    pub fn diagnostics(&self, diags: &[Diagnostic]) {
        for d in diags {
            let (label, color) = match d.severity {
                Severity::Error => ("error", RED),
                Severity::Warning => ("warning", YELLOW),
            };
            let mut loc = d.file.clone();
            if let Some(l) = d.line {
                loc.push_str(&format!(":{l}"));
            }
            let field = d
                .field
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            eprintln!(
                "{}: {}: {field}{} [{}]",
                self.paint(self.color_err, color, label),
                self.paint(self.color_err, BOLD, &loc),
                d.message,
                d.code
            );
            if let Some(h) = &d.hint {
                eprintln!("  {} {h}", self.paint(self.color_err, BOLD, "hint:"));
            }
        }
    }

    /// A progress spinner on stderr, shown only on a terminal and only after a second.
    pub fn spinner(&self, msg: &str) -> Option<indicatif::ProgressBar> {
        if !self.err_tty || self.json() {
            return None;
        }
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(pb)
    }
}

/// An error that knows its answer: the code and the extra top-level fields
/// (`hasChanges`, `diagnostics`) `--output json` prints with it. As text it
/// reads as its message and its hint.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The answer.
    pub answer: ErrorAnswer,
}

impl Failure {
    /// A failure from a library error answer.
    pub fn from_answer(answer: ErrorAnswer) -> Failure {
        Failure { answer }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.answer.error.message)?;
        if let Some(h) = &self.answer.error.hint {
            for l in h.lines() {
                write!(f, "\nhint: {l}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Styles for stdout text.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Added.
    Green,
    /// Removed.
    Red,
    /// Changed.
    Yellow,
    /// Emphasis.
    Bold,
    /// Quiet.
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Green => GREEN,
            Style::Red => RED,
            Style::Yellow => YELLOW,
            Style::Bold => BOLD,
            Style::Dim => DIM,
        }
    }
}

/// Render a value for a text diff: strings bare, the rest as compact JSON.
pub fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

/// One line of a multi-line field's diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// A line both sides have, shown as context.
    Same(String),
    /// A line only the old side has.
    Removed(String),
    /// A line only the new side has.
    Added(String),
    /// Unchanged lines left out between two hunks.
    Gap,
}

/// Lines of context shown around each change of a multi-line field.
const DIFF_CONTEXT: usize = 1;

/// The line diff of a multi-line value: only the changed lines, with
/// [`DIFF_CONTEXT`] lines of context, hunks parted by a [`DiffLine::Gap`].
/// The text and the Markdown plan both render this.
pub fn line_diff(before: &str, after: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(before, after);
    let mut lines = Vec::new();
    for (i, group) in diff.grouped_ops(DIFF_CONTEXT).iter().enumerate() {
        if i > 0 {
            lines.push(DiffLine::Gap);
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let text = change.value().trim_end_matches('\n').to_string();
                lines.push(match change.tag() {
                    ChangeTag::Delete => DiffLine::Removed(text),
                    ChangeTag::Insert => DiffLine::Added(text),
                    ChangeTag::Equal => DiffLine::Same(text),
                });
            }
        }
    }
    lines
}

/// Whether a field change is shown as a line diff (either side spans lines).
pub fn is_multiline(c: &FieldChange) -> bool {
    show_value(&c.shown_before()).contains('\n') || show_value(&c.shown_after()).contains('\n')
}

/// Render one field change as text lines (multi-line strings diffed line by line).
pub fn change_lines(out: &Output, c: &FieldChange, indent: &str) -> Vec<String> {
    let before = show_value(&c.shown_before());
    let after = show_value(&c.shown_after());
    let mut lines = Vec::new();
    if is_multiline(c) {
        lines.push(format!("{indent}{}:", c.path));
        for l in line_diff(&before, &after) {
            lines.push(match l {
                DiffLine::Removed(t) => out.style(Style::Red, &format!("{indent}  - {t}")),
                DiffLine::Added(t) => out.style(Style::Green, &format!("{indent}  + {t}")),
                DiffLine::Same(t) => out.style(Style::Dim, &format!("{indent}    {t}")),
                DiffLine::Gap => out.style(Style::Dim, &format!("{indent}    …")),
            });
        }
    } else {
        lines.push(format!(
            "{indent}{}: {} → {}",
            c.path,
            out.style(Style::Red, &before),
            out.style(Style::Green, &after)
        ));
    }
    lines
}

/// Render a plan as text for people.
pub fn plan_text(out: &Output, plan: &Plan) -> String {
    let s = &plan.summary;
    let mut lines = vec![format!(
        "{} {} (revision {}): {} to create, {} to update, {} unchanged, {} to delete, {} in conflict",
        out.style(Style::Bold, "Plan for"),
        out.style(Style::Bold, &plan.tenant),
        plan.base_revision,
        s.create,
        s.update,
        s.skip,
        s.delete,
        s.conflict
    )];
    if let Some(c) = &plan.source_commit {
        lines.push(format!("  from commit {c}"));
    }
    for a in &plan.actions {
        let (sym, style) = match a.action {
            ActionKind::Create => ("+", Style::Green),
            ActionKind::Update => ("~", Style::Yellow),
            ActionKind::Delete => ("-", Style::Red),
            ActionKind::Conflict => ("!", Style::Red),
            ActionKind::Skip => ("=", Style::Dim),
        };
        let mut head = format!("  {} {} {}", out.style(style, sym), a.kind, a.name);
        if let Some(r) = &a.reason {
            head.push_str(&format!(": {r}"));
        }
        lines.push(head);
        for c in &a.changes {
            lines.extend(change_lines(out, c, "      "));
        }
    }
    if !plan.absent.is_empty() {
        lines.push(format!(
            "  {} resource(s) in the store are not in the tree (left alone; --prune deletes them):",
            plan.absent.len()
        ));
        for a in plan.absent.iter().take(20) {
            lines.push(format!("    {} {}", a.kind, a.name));
        }
        if plan.absent.len() > 20 {
            lines.push(format!("    … and {} more", plan.absent.len() - 20));
        }
    }
    if !plan.drift.is_empty() {
        lines.push(format!(
            "  {} the store changed outside git since the last apply:",
            out.style(Style::Yellow, "drift:")
        ));
        for d in &plan.drift {
            lines.push(format!("    {} {}", d.kind, d.name));
        }
    }
    if !plan.has_changes() && plan.summary.conflict == 0 {
        lines.push("No changes.".to_string());
    }
    lines.join("\n")
}
