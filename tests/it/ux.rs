//! What a new user hits (issue 13): scaffolding, schemas from the first
//! commit, the store kept out of git, promotion order, confirmations, revert
//! guards and names, tenant deletion, variables, completions.

use crate::common::{small_tree, TestEnv};

#[test]
fn ferry_new_writes_a_minimal_valid_file_of_every_kind() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    let kinds = [
        ("agent", "agents"),
        ("tool", "tools"),
        ("connection", "connections"),
        ("knowledgeBase", "knowledgeBases"),
        ("document", "documents"),
        ("workflow", "workflows"),
        ("evaluation", "evaluations"),
    ];
    for (kind, step) in kinds {
        let run = env.ferry(&["new", kind, "sample"]).ok();
        assert!(run.stdout.contains("tenants/acme-dev/"), "{}", run.stdout);
        let text = env.read(&format!("tenants/acme-dev/{step}/sample.yaml"));
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../../schemas/"),
            "{text}"
        );
    }
    let run = env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    assert!(run.stdout.contains("7 resources, valid"), "{}", run.stdout);
    // An existing file is kept unless --force.
    let run = env.ferry(&["new", "agent", "sample"]).expect(1);
    assert!(run.stderr.contains("exists already"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: pass --force"), "{}", run.stderr);
    env.ferry(&["new", "agent", "sample", "--force", "--syncable"])
        .ok();
    assert!(env
        .read("tenants/acme-dev/agents/sample.yaml")
        .contains("syncable: true"));
    // A tool names its connection; an unknown kind is a usage error.
    env.ferry(&["new", "tool", "lookup", "--connection", "sample"])
        .ok();
    assert!(env
        .read("tenants/acme-dev/tools/lookup.yaml")
        .contains("connection: sample"));
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    env.ferry(&["new", "robot", "x"]).expect(2);
}

#[test]
fn ferry_new_asks_for_the_tenant_when_there_are_several() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    let run = env.ferry(&["new", "agent", "x"]).expect(1);
    assert!(
        run.stderr.contains("--tenant acme-dev|acme-prod"),
        "{}",
        run.stderr
    );
    env.ferry(&["new", "agent", "x", "--tenant", "acme-prod"])
        .ok();
    assert!(env.path("tenants/acme-prod/agents/x.yaml").is_file());
}

#[test]
fn init_writes_the_schemas_the_schema_comments_point_to() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    env.ferry(&["new", "evaluation", "smoke"]).ok();
    // Every $schema= comment of the tree resolves to a file written by init.
    let base = env.path("tenants/acme-dev");
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(&base) {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let first = text.lines().next().unwrap();
            if let Some(rel) = first.strip_prefix("# yaml-language-server: $schema=") {
                let target = entry.path().parent().unwrap().join(rel);
                assert!(target.is_file(), "{} does not resolve", first);
                checked += 1;
            }
        }
    }
    assert!(checked >= 1);
    let schema = env.read("schemas/agent.schema.json");
    assert!(schema.contains("\"$schema\""), "{schema}");
    // The schemas match what `ferry schemas` writes.
    env.ferry(&["schemas", "--out", "fresh"]).ok();
    assert_eq!(schema, env.read("fresh/agent.schema.json"));
}
