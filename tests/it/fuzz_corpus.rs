//! The fuzz corpus replayed on stable (issue 14): every committed input of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through
//! the target's entry point in `ferry::fuzzing`, the very function the
//! cargo-fuzz target calls; none may panic.

use std::path::PathBuf;

use crate::common::project_root;

/// A target's entry point.
type Entry = fn(&[u8]);

/// The targets and their entry points.
const TARGETS: &[(&str, Entry)] = &[
    ("yaml_resource", ferry::fuzzing::yaml_resource),
    ("zip_tree", ferry::fuzzing::zip_tree),
    ("zip_import_plan", ferry::fuzzing::zip_import_plan),
    ("staging_body", ferry::fuzzing::staging_body),
    ("plan_file", ferry::fuzzing::plan_file),
];

/// Every file of `fuzz/<dir>/<target>/`, sorted.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let folder = project_root().join("fuzz").join(dir).join(target);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replay every input of `target`, naming the one that panics.
fn replay(target: &str) -> usize {
    let (_, entry) = TARGETS.iter().find(|(t, _)| *t == target).unwrap();
    let mut n = 0;
    for path in inputs("corpus", target)
        .into_iter()
        .chain(inputs("regressions", target))
    {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&bytes));
        assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        n += 1;
    }
    n
}

#[test]
fn every_target_has_a_committed_corpus_and_a_working_fixture() {
    assert!(ferry::fuzzing::fixture_ready(), "the fixture store builds");
    for (target, _) in TARGETS {
        assert!(
            !inputs("corpus", target).is_empty(),
            "fuzz/corpus/{target}/ is empty"
        );
    }
    let manifest = std::fs::read_to_string(project_root().join("fuzz/Cargo.toml")).unwrap();
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("fuzz_targets/{target}.rs")),
            "fuzz/Cargo.toml has no target {target}"
        );
    }
}

#[test]
fn every_corpus_input_replays_without_panic() {
    for (target, _) in TARGETS {
        assert!(replay(target) > 0, "{target}: no input replayed");
    }
}
