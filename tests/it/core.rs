//! Core: init, tenants, validate, plan, apply, export.

use crate::common::*;

#[test]
pub fn small_tree_plans_applies_and_settles() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    env.ferry(&["plan", "--tenant", "acme-dev", "--detailed-exitcode"])
        .expect(2);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let plan = env.plan_json("acme-dev", 0);
    assert_eq!(plan["summary"]["skip"], 4);
    assert_eq!(plan["actions"].as_array().unwrap().len(), 0);
}

fn revision(env: &TestEnv, tenant: &str) -> u64 {
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tenant)
        .map(|t| t["revision"].as_u64().unwrap())
        .unwrap()
}

fn applied(env: &TestEnv) {
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(env, "acme-dev");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
}

#[test]
fn plan_json_has_the_documented_shape() {
    let env = TestEnv::new();
    applied(&env);
    let path = "tenants/acme-dev/agents/support-bot.yaml";
    let text = env.read(path).replace(
        "Cite the knowledge base in every answer.",
        "Cite the knowledge base twice.",
    );
    env.write(path, &text);
    let plan = env
        .ferry(&["plan", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    assert_eq!(plan["tenant"], "acme-dev");
    assert!(plan["baseRevision"].as_u64().unwrap() > 0);
    assert_eq!(
        plan["summary"],
        serde_json::json!({"create": 0, "update": 1, "skip": 3, "delete": 0, "conflict": 0})
    );
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    let a = &actions[0];
    assert_eq!(a["action"], "UPDATE");
    assert_eq!(a["kind"], "Agent");
    assert_eq!(a["name"], "support-bot");
    assert!(a["id"].as_str().unwrap().starts_with("agt_"));
    assert_eq!(a["changes"].as_array().unwrap().len(), 1);
    assert_eq!(a["changes"][0]["path"], "spec.instructions");
    assert!(a["changes"][0]["before"]
        .as_str()
        .unwrap()
        .contains("every answer"));
    assert!(a["changes"][0]["after"].as_str().unwrap().contains("twice"));
    assert!(a.get("payload").is_none(), "reports carry no payloads");
    // The text form diffs the multi-line field line by line.
    let text = env.ferry(&["plan", "--tenant", "acme-dev"]).ok().stdout;
    assert!(text.contains("~ Agent support-bot"), "{text}");
    assert!(
        text.contains("- Cite the knowledge base in every answer."),
        "{text}"
    );
    assert!(text.contains("+ Cite the knowledge base twice."), "{text}");
    assert!(
        !text.contains("\x1b["),
        "NO_COLOR and no terminal: no colour"
    );
}

#[test]
pub fn an_apply_killed_halfway_leaves_the_store_as_it_was() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    let before = revision(&env, "acme-dev");
    let mut c = env.cmd();
    c.args(["apply", "--tenant", "acme-dev", "--yes"])
        .env("FERRY_TEST_ABORT_AFTER_WRITES", "2");
    let r = run(c);
    assert_ne!(r.code, 0, "the process was killed mid-transaction");
    assert_eq!(revision(&env, "acme-dev"), before);
    let plan = env
        .ferry(&["plan", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        plan["summary"]["create"], 4,
        "nothing of the killed apply is in the store"
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    assert!(revision(&env, "acme-dev") > before);
}

#[test]
pub fn a_saved_plan_applies_and_is_refused_once_the_store_moved() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    let plan_file = env.tmp.path().join("plan.json");
    let p = plan_file.to_str().unwrap();
    env.ferry(&["plan", "--tenant", "acme-dev", "--out", p])
        .ok();
    env.ferry(&["apply", "--plan", p, "--yes"]).ok();
    let after = revision(&env, "acme-dev");
    // A second plan made now, then the store moves, then the plan is refused.
    let path = "tenants/acme-dev/agents/refund-bot.yaml";
    env.write(
        path,
        &env.read(path).replace("Be polite.", "Be very polite."),
    );
    env.ferry(&["plan", "--tenant", "acme-dev", "--out", p])
        .ok();
    env.write(
        path,
        &env.read(path).replace("Be very polite.", "Be brief."),
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let moved = revision(&env, "acme-dev");
    assert!(moved > after);
    let r = env.ferry(&["apply", "--plan", p, "--yes"]).expect(1);
    assert!(
        r.stderr.contains("changed since the plan was made"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_eq!(revision(&env, "acme-dev"), moved);
    // A file that is not a plan is refused clearly.
    std::fs::write(&plan_file, "{\"hello\": 1}").unwrap();
    let r = env.ferry(&["apply", "--plan", p, "--yes"]).expect(1);
    assert!(r.stderr.contains("not a saved ferry plan"), "{}", r.stderr);
}

#[test]
pub fn two_applies_at_once_do_not_interleave() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        env.store_env(&mut c);
        c.current_dir(&env.repo)
            .args(["apply", "--tenant", "acme-dev", "--yes"])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(c.spawn().unwrap());
    }
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        let code = o.status.code().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            code == 0
                || err.contains("changed since the plan was made")
                || err.contains("another apply"),
            "unexpected outcome {code}: {err}"
        );
    }
    assert!(outs.iter().any(|o| o.status.success()));
    let plan = env
        .ferry(&["plan", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    assert_eq!(plan["summary"]["skip"], 4);
    assert_eq!(plan["summary"]["create"], 0);
}

#[test]
fn prune_is_opt_in_guarded_and_never_deletes_what_is_referenced() {
    let env = TestEnv::new();
    applied(&env);
    // Without prune, a missing file is reported and left alone.
    std::fs::remove_file(env.path("tenants/acme-dev/agents/refund-bot.yaml")).unwrap();
    let text = env
        .read("tenants/acme-dev/agents/support-bot.yaml")
        .replace("  subAgents:\n  - refund-bot\n", "");
    env.write("tenants/acme-dev/agents/support-bot.yaml", &text);
    let plan = env
        .ferry(&["plan", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    assert_eq!(plan["summary"]["delete"], 0);
    assert_eq!(plan["absent"][0]["name"], "refund-bot");
    // With prune, it is deleted.
    let plan = env
        .ferry(&[
            "plan", "--tenant", "acme-dev", "--prune", "--output", "json",
        ])
        .ok()
        .json();
    assert_eq!(plan["summary"]["delete"], 1);
    env.ferry(&["apply", "--tenant", "acme-dev", "--prune", "--yes"])
        .ok();
    // Removing most of the tenant needs --force.
    for f in ["tools/crm-lookup.yaml", "connections/crm.yaml"] {
        std::fs::remove_file(env.path(&format!("tenants/acme-dev/{f}"))).unwrap();
    }
    env.write(
        "tenants/acme-dev/agents/support-bot.yaml",
        &env.read("tenants/acme-dev/agents/support-bot.yaml")
            .replace("  - crm-lookup\n", ""),
    );
    let before = revision(&env, "acme-dev");
    let r = env
        .ferry(&["apply", "--tenant", "acme-dev", "--prune", "--yes"])
        .expect(1);
    assert!(r.stderr.contains("without --force"), "{}", r.stderr);
    assert_eq!(revision(&env, "acme-dev"), before);
    env.ferry(&[
        "apply", "--tenant", "acme-dev", "--prune", "--yes", "--force",
    ])
    .ok();
}

#[test]
fn an_empty_tree_never_means_delete_everything() {
    let env = TestEnv::new();
    applied(&env);
    for f in [
        "agents/refund-bot.yaml",
        "agents/support-bot.yaml",
        "tools/crm-lookup.yaml",
        "connections/crm.yaml",
    ] {
        std::fs::remove_file(env.path(&format!("tenants/acme-dev/{f}"))).unwrap();
    }
    let r = env
        .ferry(&[
            "apply", "--tenant", "acme-dev", "--prune", "--yes", "--force",
        ])
        .expect(1);
    assert!(r.stderr.contains("holds no resources"), "{}", r.stderr);
    let r = env
        .ferry(&["plan", "--tenant", "acme-dev", "--from", "no-such-folder"])
        .expect(1);
    assert!(r.stderr.contains("tree not found"), "{}", r.stderr);
}

#[test]
fn a_referenced_resource_is_not_deleted_even_with_prune() {
    // The store holds a tool; the tree drops it but the (unchanged) agent
    // file still names it: the tree is invalid, and nothing is deleted.
    let env = TestEnv::new();
    applied(&env);
    std::fs::remove_file(env.path("tenants/acme-dev/tools/crm-lookup.yaml")).unwrap();
    let r = env
        .ferry(&["apply", "--tenant", "acme-dev", "--prune", "--yes"])
        .expect(1);
    assert!(r.stderr.contains("agents/support-bot.yaml"), "{}", r.stderr);
    assert!(r.stderr.contains("crm-lookup"), "{}", r.stderr);
    let plan = env
        .ferry(&[
            "plan",
            "--tenant",
            "acme-dev",
            "--from",
            "tenants/acme-dev",
            "--output",
            "json",
        ])
        .expect(1);
    assert!(
        plan.stdout.contains("dangling-reference"),
        "{}",
        plan.stdout
    );
}

#[test]
fn secrets_are_encrypted_to_the_tenant_and_plain_text_is_refused() {
    let env = TestEnv::new();
    applied(&env);
    let enc = env
        .ferry_stdin(
            &["secret", "encrypt", "--tenant", "acme-dev"],
            "sk-live-very-secret-value-123\n",
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(enc.starts_with("ENC[age,") && enc.ends_with(']'), "{enc}");
    assert!(!enc.contains("very-secret"));
    let tf = env.read("tenants/acme-dev/tenant.toml");
    assert!(tf.contains("recipient = \"age1"), "{tf}");
    // An encrypted credential is accepted...
    let path = "tenants/acme-dev/connections/crm.yaml";
    env.write(path, &env.read(path).replace("${vars.CRM_API_KEY}", &enc));
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    // ...a plain one is refused, naming the file, line and field, without echoing the value.
    env.write(path, &env.read(path).replace(&enc, "hunter2-plain"));
    let r = env.ferry(&["validate", "--tenant", "acme-dev"]).expect(1);
    assert!(r.stderr.contains("connections/crm.yaml:"), "{}", r.stderr);
    assert!(r.stderr.contains("spec.credentials.apiKey"), "{}", r.stderr);
    assert!(r.stderr.contains("plaintext-secret"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"));
    let r = env
        .ferry(&["apply", "--tenant", "acme-dev", "--yes"])
        .expect(1);
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"));
    // Export writes the ciphertext that is in the store, never a plaintext.
    env.ferry(&["export", "--tenant", "acme-dev"]).ok();
    let exported = env.read(path);
    assert!(exported.contains(&enc), "{exported}");
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    let r = env.ferry(&["apply", "--tenant", "acme-dev"]).expect(1);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
}

#[test]
fn usage_errors_exit_2_and_missing_repo_is_explained() {
    let env = TestEnv::empty();
    std::fs::create_dir_all(&env.repo).unwrap();
    let r = env.ferry(&["plan"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = env.ferry(&["tenant", "list"]).expect(1);
    assert!(r.stderr.contains("ferry init"), "{}", r.stderr);
}

#[test]
fn steps_are_listed_in_order() {
    let env = TestEnv::new();
    let steps = env.ferry(&["steps", "--output", "json"]).ok().json();
    assert_eq!(
        steps["items"],
        serde_json::json!([
            "documents",
            "connections",
            "knowledgeBases",
            "tools",
            "workflows",
            "agents",
            "evaluations"
        ])
    );
}

#[test]
fn a_missing_tenant_is_named_with_a_hint() {
    let env = TestEnv::new();
    let r = env.ferry(&["plan", "--tenant", "nope"]).expect(1);
    assert!(
        r.stderr.contains("tenant `nope` does not exist"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: create it with `ferry tenant create nope`"),
        "{}",
        r.stderr
    );
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    let r = env.ferry(&["tenant", "create", "acme-dev"]).expect(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

#[test]
fn exporting_an_empty_tenant_over_a_tree_needs_force() {
    let env = TestEnv::new();
    applied(&env);
    let other = env.tmp.path().join("other.db");
    let url = format!("sqlite:{}", other.display());
    // A second store adopting the folder: --force, as tenant.toml names the first store's key.
    env.ferry(&["tenant", "create", "acme-dev", "--store", &url, "--force"])
        .ok();
    let r = env
        .ferry(&["export", "--tenant", "acme-dev", "--store", &url])
        .expect(1);
    assert!(
        r.stderr.contains("would delete the 4 resource file(s)"),
        "{}",
        r.stderr
    );
    assert!(env
        .path("tenants/acme-dev/agents/support-bot.yaml")
        .is_file());
    env.ferry(&["export", "--tenant", "acme-dev", "--store", &url, "--force"])
        .ok();
    assert!(!env
        .path("tenants/acme-dev/agents/support-bot.yaml")
        .exists());
}
