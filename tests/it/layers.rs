//! The architecture test: the layers of `src/` as the imports show them.
//!
//! `src/` is grouped by layer: `domain/` (the pure core), `service/` (the use
//! cases), `backend/` (store, git, ZIP) and the front ends `cli/` and
//! `server/`. This test reads every `crate::` path in the code (comments
//! left out) and fails on an arrow the layering forbids, and on a second
//! module naming git2, rusqlite, zip or the YAML crate. It also fails on a
//! front end that checks a role itself rather than leaving it to the
//! library, and on a function longer than 120 lines.

use std::path::{Path, PathBuf};

use crate::common::project_root;

/// The layer a file of `src/` belongs to: its first folder, or the file itself.
fn layer_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// The layers a layer may name, besides itself.
fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "domain" => &[],
        "backend" => &["domain"],
        "service" => &["domain", "backend"],
        "cli" => &["domain", "service", "backend"],
        "server" => &["domain", "service", "backend"],
        _ => &["domain", "service", "backend", "cli", "server"],
    }
}

/// Which files may name each external crate, as paths under `src/` (a prefix ending in `/` is a folder).
const CRATE_OWNERS: &[(&str, &[&str])] = &[
    ("git2", &["backend/vcs.rs"]),
    ("rusqlite", &["backend/store/"]),
    ("postgres", &["backend/store/postgres/"]),
    ("zip", &["backend/archive.rs"]),
    ("serde_saphyr", &["domain/yaml.rs"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `.rs` file under `src`, in path order: its path relative to `src` (with `/`) and its text.
fn sources(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .iter()
        .map(|file| {
            let rel = file.strip_prefix(src).expect("under src");
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            (rel_text, std::fs::read_to_string(file).expect("read file"))
        })
        .collect()
}

/// The code of a line without its `//` comment (string literals are rare enough here to ignore).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every forbidden arrow and crate use in the source tree rooted at `src`.
pub fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (rel_text, text) in sources(src) {
        let from = layer_of(Path::new(&rel_text));
        let local_mods: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let l = l.strip_prefix("pub ").unwrap_or(l);
                l.strip_prefix("mod ")
                    .map(|m| m.trim_end_matches(';').trim().to_string())
            })
            .collect();
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (i, _) in code.match_indices("crate::") {
                let before = code[..i].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let to: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if to == from || to.is_empty() {
                    continue;
                }
                if !allowed(&from).contains(&to.as_str()) {
                    found.push(format!(
                        "src/{rel_text}:{}: `{from}` may not use `crate::{to}` (allowed: {})",
                        n + 1,
                        allowed(&from).join(", ")
                    ));
                }
            }
            for (krate, owners) in CRATE_OWNERS {
                if local_mods.iter().any(|m| m == krate) {
                    continue;
                }
                let pat = format!("{krate}::");
                let named = code.match_indices(&pat).any(|(i, _)| {
                    let before = code[..i].chars().last();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                });
                let owned = owners.iter().any(|o| {
                    if o.ends_with('/') {
                        rel_text.starts_with(o)
                    } else {
                        rel_text == *o
                    }
                });
                if named && !owned {
                    found.push(format!(
                        "src/{rel_text}:{}: names the `{krate}` crate, which only {} may name",
                        n + 1,
                        owners.join(", ")
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn the_layers_hold() {
    none_found("forbidden imports", violations(&project_root().join("src")));
}

/// Fail listing every finding, one per line.
fn none_found(what: &str, found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{what} ({}):\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn a_forbidden_arrow_is_caught() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path();
    for dir in ["domain", "cli", "server", "service"] {
        std::fs::create_dir_all(src.join(dir)).expect("mkdir");
    }
    std::fs::write(src.join("domain/plan.rs"), "use crate::service::apply;\n").expect("w");
    std::fs::write(src.join("cli/serve.rs"), "use crate::server::run; // ok?\n").expect("w");
    std::fs::write(src.join("server/x.rs"), "use crate::cli::repo;\n").expect("w");
    std::fs::write(
        src.join("service/y.rs"),
        "fn f() { git2::Repository::open(\".\"); }\n",
    )
    .expect("w");
    std::fs::write(src.join("cli/mod.rs"), "mod zip;\nuse zip::ZipCommand;\n").expect("w");
    let found = violations(src);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].contains("`cli` may not use `crate::server`"),
        "{found:#?}"
    );
    assert!(found[1].contains("`domain` may not use `crate::service`"));
    assert!(found[2].contains("`server` may not use `crate::cli`"));
    assert!(found[3].contains("names the `git2` crate"));
}

/// The front-end files that may check a role themselves: the store
/// protocol's endpoints (a remote store has no use case; each operation's
/// role is its contract) and the caller type those endpoints check with.
const ROLE_CHECKING_FRONT_ENDS: [&str; 2] = ["server/ferry_api.rs", "server/auth.rs"];

/// Every place a front end (`cli/`, `server/`) refuses by role itself
/// (`.require(`) instead of leaving the check to the library's use case.
pub fn front_end_role_checks(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (rel_text, text) in sources(src) {
        let front_end = rel_text.starts_with("cli/") || rel_text.starts_with("server/");
        if !front_end || ROLE_CHECKING_FRONT_ENDS.contains(&rel_text.as_str()) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if code_of(line).contains(".require(") {
                found.push(format!(
                    "src/{rel_text}:{}: a front end checks a role itself; call the use case (or its `authorize_…`) instead",
                    n + 1
                ));
            }
        }
    }
    found
}

/// Architecture Invariant: the front ends hold no role rules. Every role
/// check of a use case, read or write, is the library's.
#[test]
fn front_ends_leave_role_checks_to_the_library() {
    none_found(
        "role checks in a front end",
        front_end_role_checks(&project_root().join("src")),
    );
}

#[test]
fn a_role_check_in_a_front_end_is_caught() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path();
    for dir in ["cli", "server/ui", "service"] {
        std::fs::create_dir_all(src.join(dir)).expect("mkdir");
    }
    let check = "fn f() { me.require(&t, Role::Editor, \"editing\")?; }\n";
    for file in [
        "cli/a.rs",
        "server/ui/b.rs",
        "server/auth.rs",
        "service/c.rs",
    ] {
        std::fs::write(src.join(file), check).expect("w");
    }
    std::fs::write(src.join("cli/d.rs"), "// me.require(..) in a comment\n").expect("w");
    let found = front_end_role_checks(src);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("src/cli/a.rs:1:"), "{found:#?}");
    assert!(found[1].starts_with("src/server/ui/b.rs:1:"), "{found:#?}");
}

/// The longest a function of `src/` may run, in lines (signature to closing brace).
const MAX_FN_LINES: usize = 120;

/// Whether a (trimmed) line starts a function: `fn`, after any `pub(…)`,
/// `const`, `async` or `unsafe`.
fn starts_fn(trimmed: &str) -> Option<String> {
    let mut rest = trimmed;
    if let Some(r) = rest.strip_prefix("pub") {
        rest = match r.strip_prefix('(') {
            Some(inner) => inner.split_once(')').map(|(_, after)| after)?,
            None => r,
        };
        rest = rest.strip_prefix(' ')?;
    }
    for qualifier in ["const ", "async ", "unsafe ", "extern \"C\" "] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let name: String = rest
        .strip_prefix("fn ")?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The line index of the `}` closing the item opened at `start` (rustfmt
/// style: the closing brace sits at the item's indentation), or `None` for a
/// declaration without a body.
fn item_end(lines: &[&str], start: usize) -> Option<usize> {
    let ind = indent_of(lines[start]);
    // The signature ends at the first line at the item's indentation ending in `{` or `;`.
    let mut j = start;
    while j < lines.len() {
        let code = code_of(lines[j]).trim_end();
        if indent_of(lines[j]) == ind && (code.ends_with(';') || code.ends_with('{')) {
            break;
        }
        if j == start && code.ends_with('}') {
            return Some(j);
        }
        j += 1;
    }
    if j >= lines.len() || code_of(lines[j]).trim_end().ends_with(';') {
        return None;
    }
    (j..lines.len()).find(|&k| lines[k].trim() == "}" && indent_of(lines[k]) == ind)
}

/// Every function of the source tree rooted at `src` longer than `max`
/// lines, outside `#[cfg(test)]` items: `src/<file>:<line>: fn <name> is N lines`.
pub fn long_functions(src: &Path, max: usize) -> Vec<String> {
    let mut found = Vec::new();
    for (rel_text, text) in sources(src) {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let trimmed = lines[i].trim();
            if trimmed == "#[cfg(test)]" {
                // Skip the test item that follows (a module or a function).
                let item = (i + 1..lines.len()).find(|&k| !lines[k].trim().starts_with("#["));
                i = item.and_then(|k| item_end(&lines, k)).unwrap_or(i) + 1;
                continue;
            }
            if let Some(name) = starts_fn(trimmed) {
                if let Some(end) = item_end(&lines, i) {
                    let len = end - i + 1;
                    if len > max {
                        found.push(format!(
                            "src/{rel_text}:{}: fn {name} is {len} lines (at most {max}); split it into named steps",
                            i + 1
                        ));
                    }
                }
            }
            i += 1;
        }
    }
    found
}

#[test]
fn no_function_runs_past_120_lines() {
    none_found(
        "functions too long to hold in one's head",
        long_functions(&project_root().join("src"), MAX_FN_LINES),
    );
}

#[test]
fn a_long_function_is_caught_and_tests_are_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path();
    std::fs::create_dir_all(src.join("domain")).expect("mkdir");
    let body = |n: usize| "    let x = 1;\n".repeat(n);
    let text = format!(
        "pub(crate) fn long_one(\n    a: u8,\n) -> u8 {{\n{}}}\n\nfn short() {{\n{}}}\n\nfn one_line() {{}}\n\ntrait T {{\n    fn declared(\n        &self,\n    ) -> u8;\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{}    }}\n}}\n\nimpl X {{\n    pub async fn long_method(&self) {{\n{}    }}\n}}\n",
        body(130),
        body(10),
        body(200),
        body(125)
    );
    std::fs::write(src.join("domain/plan.rs"), text).expect("w");
    let found = long_functions(src, MAX_FN_LINES);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("src/domain/plan.rs:1: fn long_one is 134 lines"),
        "{found:#?}"
    );
    assert!(
        found[1].contains(": fn long_method is 127 lines"),
        "{found:#?}"
    );
}
