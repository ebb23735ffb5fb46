//! Checks on the values inside one resource that no type can express:
//! control characters (and bidi overrides) in strings, non-finite numbers,
//! the ranges of model settings, snippet names (present, and unique
//! within their agent) and SharePoint folder URLs. Each finding names the
//! field, never the value, so nothing raw reaches a terminal.

use crate::domain::diagnostic::Diagnostic;
use crate::domain::model::{Resource, SharePointFolder, Spec};

/// Whether `c` may not appear in a string field: a control character other
/// than `\n` and `\t`, or a bidirectional override or isolate.
pub fn is_forbidden_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Every problem of the values of `resource` (file `path`), as `(field, code, message)`.
pub fn value_problems(resource: &Resource) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    let spec = resource.spec.to_json();
    strings_in(&spec, "spec", &mut out);
    let mut number = |field: &str, v: Option<f64>, lo: f64, hi: f64| match v {
        Some(x) if !x.is_finite() => out.push((
            field.to_string(),
            "non-finite-number",
            "must be a finite number (not .nan or .inf)".to_string(),
        )),
        Some(x) if !(lo..=hi).contains(&x) => out.push((
            field.to_string(),
            "out-of-range",
            format!("must be between {lo} and {hi}"),
        )),
        _ => {}
    };
    match &resource.spec {
        Spec::Agent(a) => {
            number("spec.model.temperature", a.model.temperature, 0.0, 2.0);
            if a.model.max_tokens == Some(0) {
                out.push((
                    "spec.model.maxTokens".to_string(),
                    "out-of-range",
                    "must be greater than 0".to_string(),
                ));
            }
            for (i, sn) in a.snippets.iter().enumerate() {
                let field = format!("spec.snippets[{i}].name");
                if sn.name.trim().is_empty() {
                    out.push((field, "empty-name", "a snippet needs a name".to_string()));
                } else if a.snippets[..i].iter().any(|o| o.name == sn.name) {
                    out.push((
                        field,
                        "duplicate-name",
                        "another snippet of this agent has the same name".to_string(),
                    ));
                }
            }
            if let Some(problem) = a.sharepoint_folder.as_ref().and_then(folder_url_problem) {
                out.push((
                    "spec.sharepointFolder.folderUrl".to_string(),
                    "bad-folder-url",
                    problem.to_string(),
                ));
            }
        }
        Spec::Evaluation(e) => number("spec.passThreshold", e.pass_threshold, 0.0, 1.0),
        _ => {}
    }
    out
}

/// What is wrong with a SharePoint folder's URL: it must be `https://`
/// with a host and no user name or password in it.
fn folder_url_problem(folder: &SharePointFolder) -> Option<&'static str> {
    let Some(rest) = folder.folder_url.strip_prefix("https://") else {
        return Some("must be an https:// URL of the folder");
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Some("must name a host after https://");
    }
    if host.contains('@') {
        return Some("must not hold a user name or password; the connection's credentials are kept elsewhere");
    }
    None
}

fn strings_in(v: &serde_json::Value, path: &str, out: &mut Vec<(String, &'static str, String)>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(c) = s.chars().find(|c| is_forbidden_char(*c)) {
                out.push((
                    path.to_string(),
                    "control-character",
                    format!(
                        "holds the character U+{:04X}; only line breaks and tabs may appear in text",
                        c as u32
                    ),
                ));
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_in(item, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                if k.chars().any(is_forbidden_char) {
                    out.push((
                        path.to_string(),
                        "control-character",
                        "a key holds a control character".to_string(),
                    ));
                }
                strings_in(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// [`value_problems`] as diagnostics of file `path`.
pub fn check_values(
    path: &str,
    resource: &Resource,
    line: &dyn Fn(&str) -> Option<u64>,
) -> Vec<Diagnostic> {
    value_problems(resource)
        .into_iter()
        .map(|(field, code, message)| {
            Diagnostic::error(path, code, message)
                .at_line(line(&field))
                .in_field(field)
        })
        .collect()
}
