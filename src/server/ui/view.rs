//! What several pages draw the same way: a field's value, and one changed
//! field side by side (multi-line text diffed line by line with `similar`).

use maud::{html, Markup};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

/// A value as people read it: text as is, `(none)` for absent, JSON otherwise.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// One side of a line diff.
struct Line {
    tag: ChangeTag,
    text: String,
}

/// The lines of each side, marked removed (left) or added (right).
fn line_diff(before: &str, after: &str) -> (Vec<Line>, Vec<Line>) {
    let diff = TextDiff::from_lines(before, after);
    let mut left = Vec::new();
    let mut right = Vec::new();
    for change in diff.iter_all_changes() {
        let text = change.value().trim_end_matches('\n').to_string();
        match change.tag() {
            ChangeTag::Equal => {
                left.push(Line {
                    tag: ChangeTag::Equal,
                    text: text.clone(),
                });
                right.push(Line {
                    tag: ChangeTag::Equal,
                    text,
                });
            }
            ChangeTag::Delete => left.push(Line {
                tag: ChangeTag::Delete,
                text,
            }),
            ChangeTag::Insert => right.push(Line {
                tag: ChangeTag::Insert,
                text,
            }),
        }
    }
    (left, right)
}

fn lines(list: &[Line]) -> Markup {
    html! {
        pre {
            @for l in list {
                @match l.tag {
                    ChangeTag::Delete => { span.line.del { del { (l.text) } } }
                    ChangeTag::Insert => { span.line.ins { ins { (l.text) } } }
                    ChangeTag::Equal => { span.line { (l.text) } }
                }
            }
        }
    }
}

fn is_multiline(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains('\n'))
}

/// One changed field: its path, then the two values side by side under `labels`.
pub fn change(path: &str, before: &Value, after: &Value, labels: (&str, &str)) -> Markup {
    let (left, right) = if is_multiline(before) || is_multiline(after) {
        let b = before.as_str().unwrap_or("");
        let a = after.as_str().unwrap_or("");
        let (l, r) = line_diff(b, a);
        (lines(&l), lines(&r))
    } else {
        (
            html! { pre.value { (value_text(before)) } },
            html! { pre.value { (value_text(after)) } },
        )
    };
    html! {
        div.change data-path=(path) {
            p.path { code { (path) } }
            div.side {
                div.before { h3 { (labels.0) } (left) }
                div.after { h3 { (labels.1) } (right) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_line_text_is_diffed_line_by_line() {
        let html = change(
            "spec.instructions",
            &json!("one\ntwo\nthree\n"),
            &json!("one\nTWO\nthree\n"),
            ("Production", "Staging"),
        )
        .into_string();
        assert!(html.contains("<del>two</del>"), "{html}");
        assert!(html.contains("<ins>TWO</ins>"), "{html}");
        assert_eq!(html.matches("<span class=\"line\">one</span>").count(), 2);
    }

    #[test]
    fn values_read_as_text() {
        assert_eq!(value_text(&json!(null)), "(none)");
        assert_eq!(value_text(&json!(["a", "b"])), "a, b");
        assert_eq!(value_text(&json!(0.2)), "0.2");
    }
}
