//! Output: data on stdout, status and hints on stderr, colour only where wanted.

use std::io::{IsTerminal, Write};

use similar::{ChangeTag, TextDiff};

use super::Format;
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

    /// Print an error (with its causes and any `hint:` lines) to stderr.
    pub fn error(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        let mut lines = msg.lines();
        if let Some(first) = lines.next() {
            eprintln!("{} {first}", self.paint(self.color_err, RED, "error:"));
        }
        for l in lines {
            if let Some(h) = l.strip_prefix("hint: ") {
                self.hint(h);
            } else {
                eprintln!("{l}");
            }
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

/// Render one field change as text lines (multi-line strings diffed line by line).
pub fn change_lines(out: &Output, c: &FieldChange, indent: &str) -> Vec<String> {
    let before = show_value(&c.shown_before());
    let after = show_value(&c.shown_after());
    let mut lines = Vec::new();
    if before.contains('\n') || after.contains('\n') {
        lines.push(format!("{indent}{}:", c.path));
        let diff = TextDiff::from_lines(&before, &after);
        for change in diff.iter_all_changes() {
            let text = change.value().trim_end_matches('\n');
            match change.tag() {
                ChangeTag::Delete => {
                    lines.push(out.style(Style::Red, &format!("{indent}  - {text}")))
                }
                ChangeTag::Insert => {
                    lines.push(out.style(Style::Green, &format!("{indent}  + {text}")))
                }
                ChangeTag::Equal => {}
            }
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
