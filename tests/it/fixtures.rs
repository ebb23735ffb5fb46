//! The fixtures: `fixtures/acme` round-trips through the store byte for byte,
//! and every tree in `fixtures/invalid` fails with a message naming its file.

use crate::common::*;

/// Every invalid case, the file its message must name, and the code it must carry.
const INVALID: &[(&str, &str, &str)] = &[
    ("malformed-yaml", "agents/", "yaml"),
    ("unknown-kind", "", "unknown-kind"),
    ("unknown-field", "agents/", "unknown-field"),
    ("wrong-type", "agents/", "wrong-type"),
    ("duplicate-name", "agents/", "duplicate-name"),
    ("duplicate-id", "", "duplicate-id"),
    ("path-mismatch", "tools/foo.yaml", "path-mismatch"),
    ("dangling-reference", "agents/", "dangling-reference"),
    ("cycle-subagents", "agents/", "reference-cycle"),
    ("cycle-workflows", "workflows/", "reference-cycle"),
    ("plaintext-secret", "connections/", "plaintext-secret"),
    ("not-utf8", "agents/", "not-utf8"),
    ("alias-bomb", "agents/", "yaml-budget"),
    ("duplicate-key", "", "duplicate-key"),
    ("wrong-kind-folder", "agents/", "wrong-folder"),
    ("bad-api-version", "", "api-version"),
    ("missing-content-file", "documents/", "missing-content-file"),
];

#[test]
fn every_invalid_fixture_fails_validate_naming_its_file() {
    let root = project_root().join("fixtures/invalid");
    let mut seen = 0;
    for (case, file, code) in INVALID {
        let dir = root.join(case);
        assert!(dir.is_dir(), "missing fixture {case}");
        let env = TestEnv::new();
        let r = env.ferry(&["validate", dir.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{case}: expected failure\n{}", r.stderr);
        assert!(
            r.stderr.contains(file),
            "{case}: message must name {file}:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("[{code}]")),
            "{case}: expected [{code}]:\n{}",
            r.stderr
        );
        let json = env
            .ferry(&["validate", dir.to_str().unwrap(), "--output", "json"])
            .expect(1)
            .json();
        assert_eq!(json["valid"], false);
        assert!(json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["file"].as_str().is_some_and(|f| !f.is_empty())));
        seen += 1;
    }
    let on_disk = std::fs::read_dir(&root)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        seen, on_disk,
        "every folder in fixtures/invalid has a case here"
    );
}

#[test]
fn applying_an_invalid_tree_exits_1_and_changes_nothing() {
    for (case, _, _) in INVALID {
        let env = TestEnv::new();
        env.ferry(&["tenant", "create", "acme-dev"]).ok();
        small_tree(&env, "acme-dev");
        env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
        let before = env
            .ferry(&["tenant", "list", "--output", "json"])
            .ok()
            .json();
        let r = env.ferry(&[
            "apply",
            "--tenant",
            "acme-dev",
            "--yes",
            "--from",
            project_root()
                .join("fixtures/invalid")
                .join(case)
                .to_str()
                .unwrap(),
        ]);
        assert_eq!(r.code, 1, "{case}: {}", r.stderr);
        assert!(
            r.stderr.contains("nothing was changed"),
            "{case}: {}",
            r.stderr
        );
        let after = env
            .ferry(&["tenant", "list", "--output", "json"])
            .ok()
            .json();
        assert_eq!(before, after, "{case}: the store moved");
    }
}

#[test]
fn acme_round_trips_through_the_store() {
    let env = TestEnv::acme();
    let tf = env.read("tenants/acme-dev/tenant.toml");
    assert!(
        tf.contains("recipient = \"age1"),
        "adopting writes the public key:\n{tf}"
    );
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    let plan = env.plan_json("acme-dev", 2);
    assert!(plan["summary"]["create"].as_u64().unwrap() >= 30);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["plan", "--tenant", "acme-dev", "--detailed-exitcode"])
        .expect(0);
    // Export reproduces the tree byte for byte.
    let original = project_root().join("fixtures/acme/tenants/acme-dev");
    let out = env.tmp.path().join("exported");
    env.ferry(&[
        "export",
        "--tenant",
        "acme-dev",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    for entry in walkdir::WalkDir::new(&original) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&original).unwrap();
        if entry.file_type().is_file() && rel.to_str() != Some("tenant.toml") {
            let a = std::fs::read(entry.path()).unwrap();
            let b = std::fs::read(out.join(rel)).unwrap_or_default();
            assert!(
                a == b,
                "{} differs after export:\n{}",
                rel.display(),
                String::from_utf8_lossy(&b)
            );
        }
    }
    let count = |d: &std::path::Path| {
        walkdir::WalkDir::new(d)
            .into_iter()
            .filter(|e| e.as_ref().unwrap().file_type().is_file())
            .count()
    };
    assert_eq!(count(&original), count(&out));
    // Exporting twice gives the same bytes.
    let second = env
        .ferry(&[
            "export",
            "--tenant",
            "acme-dev",
            "--out",
            out.to_str().unwrap(),
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(second["written"].as_array().unwrap().len(), 0);
}

#[test]
fn a_one_line_instruction_edit_is_exactly_one_update_with_one_path() {
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let path = "tenants/acme-dev/agents/support-bot.yaml";
    env.edit_first_instruction_line(path, " Please be concise.");
    let plan = env.plan_json("acme-dev", 2);
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{plan:#}");
    assert_eq!(actions[0]["action"], "UPDATE");
    assert_eq!(actions[0]["name"], "support-bot");
    let changes = actions[0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["path"], "spec.instructions");
}

#[test]
fn the_demo_runs_end_to_end() {
    let env = TestEnv::empty();
    std::fs::create_dir_all(&env.repo).unwrap();
    let r = env.ferry(&["demo"]).ok();
    assert!(r.stderr.contains("== Done."), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("The web UI of the demo's server was at http://127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("~ Agent support-bot"), "{}", r.stdout);
    // The whole story: two tagged publishes, an idempotent promotion, a ZIP import.
    assert!(
        r.stdout.contains("tagged acme-dev/publish/2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("0 to create, 0 to update, 25 unchanged"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Imported into acme-sandbox"),
        "{}",
        r.stdout
    );
}

/// The diagnostics a person reads for every invalid fixture, as one snapshot.
#[test]
fn invalid_fixture_messages_snapshot() {
    let root = project_root().join("fixtures/invalid");
    let env = TestEnv::new();
    let mut report = String::new();
    for (case, _, _) in INVALID {
        let r = env.ferry(&["validate", root.join(case).to_str().unwrap()]);
        report.push_str(&format!("## {case}\n"));
        for line in r
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("warning:"))
        {
            report.push_str(line);
            report.push('\n');
        }
    }
    insta::assert_snapshot!(report);
}

/// The text of a plan with one edited instruction line.
#[test]
fn plan_text_snapshot() {
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let path = "tenants/acme-dev/agents/support-bot.yaml";
    env.edit_first_instruction_line(path, " Please be concise.");
    let plan = env.ferry(&["plan", "--tenant", "acme-dev"]).ok().stdout;
    insta::assert_snapshot!(plan);
}
