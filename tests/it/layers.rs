//! The architecture test: the layers of `src/` as the imports show them.
//!
//! `src/` is grouped by layer: `domain/` (the pure core), `service/` (the use
//! cases), `backend/` (store, git, ZIP) and the front ends `cli/` and
//! `server/`. This test reads every `crate::` path in the code (comments
//! left out) and fails on an arrow the layering forbids, and on a second
//! module naming git2, rusqlite, zip or the YAML crate.

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

/// The code of a line without its `//` comment (string literals are rare enough here to ignore).
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every forbidden arrow and crate use in the source tree rooted at `src`.
pub fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).expect("under src");
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("read file");
        let from = layer_of(rel);
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
    let found = violations(&project_root().join("src"));
    assert!(
        found.is_empty(),
        "forbidden imports ({}):\n{}",
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
