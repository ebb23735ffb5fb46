//! What the benchmarks share: the release binary and copying fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the release `ferry` binary and return its path.
pub fn ferry_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--release", "--quiet", "--bin", "ferry"])
        .current_dir(&root);
    // What `cargo bench` set for this bench (its package, its `OUT_DIR`)
    // would reach build scripts that rerun when those change, and rebuild
    // half the dependencies on every run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&key.as_ref());
        if (key.starts_with("CARGO_") && !keep) || key == "OUT_DIR" {
            build.env_remove(key.as_ref());
        }
    }
    let status = build.status().expect("cargo build");
    assert!(status.success());
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or(root.join("target"));
    target.join("release/ferry")
}

/// Copy a folder recursively.
#[allow(dead_code)]
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk");
        let rel = entry.path().strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}
