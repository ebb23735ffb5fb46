//! Work in proportion to the change, checked by counting rather than timing:
//! a `plan --ref` of one changed file reads the same number of store rows
//! and a one-change `export --commit` writes the same number of git objects
//! whether the tenant holds 1,000 resources or 10,000; so does a staging
//! edit of one agent read the same number of rows. And a plan that reads
//! only the changed units says exactly what the whole plan says.

use std::path::Path;

use ferry::domain::plan::DiffOptions;
use ferry::service::gitplan;

use crate::common::*;
use ferry::service::access::Actor;

const T: &str = "big";

/// A tenant of `n` resources: one connection, tools on it, and an agent per
/// ten tools that uses three of them (agents 1.. also have agent 0 as a sub-agent).
fn write_tenant(env: &TestEnv, n: usize) {
    let base = format!("tenants/{T}");
    env.write(
        &format!("{base}/connections/crm.yaml"),
        "apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\nspec:\n  type: http\n  baseUrl: https://crm.example.com\n",
    );
    let agents = n / 10;
    for i in 0..n - 1 - agents {
        env.write(
            &format!("{base}/tools/tool-{i:05}.yaml"),
            &format!("apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: tool-{i:05}\nspec:\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /items/{i}\n"),
        );
    }
    for a in 0..agents {
        let sub = if a == 0 {
            String::new()
        } else {
            "  subAgents:\n  - agent-00000\n".to_string()
        };
        env.write(
            &format!("{base}/agents/agent-{a:05}.yaml"),
            &format!("apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: agent-{a:05}\nspec:\n  type: chat\n  model:\n    provider: openai\n    name: gpt-4o-mini\n  instructions: |\n    Answer questions about items.\n  tools:\n  - tool-{:05}\n  - tool-{:05}\n  - tool-{:05}\n{sub}", a * 3, a * 3 + 1, a * 3 + 2),
        );
    }
}

/// Loose objects in the repo's object database.
fn loose_objects(repo: &Path) -> usize {
    walk_files(&repo.join(".git/objects"))
        .into_iter()
        .filter(|p| {
            let dir = p.parent().and_then(|d| d.file_name()).unwrap_or_default();
            dir.len() == 2 && dir.to_string_lossy().chars().all(|c| c.is_ascii_hexdigit())
        })
        .count()
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// What one change costs at tenant size `n`: store rows read by `plan --ref`,
/// and by `export --commit` of one change made in the store, the git
/// objects that export writes, and the rows a staging edit of one agent reads.
fn one_change_costs(n: usize) -> (u64, u64, usize, u64) {
    let env = TestEnv::new();
    // Loose objects are counted: no `git gc --auto` may pack them meanwhile.
    env.git(&["config", "gc.auto", "0"]);
    env.ferry(&["tenant", "create", T]).ok();
    write_tenant(&env, n);
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["export", "--tenant", T, "--commit", "-m", "whole tree"])
        .ok();
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let bot = format!("tenants/{T}/agents/agent-00001.yaml");
    let text = env
        .read(&bot)
        .replace("about items", "about items, briefly");
    env.write(&bot, &text);
    env.git(&["commit", "-qam", "one change"]);

    let store = env.open_store();
    let before = store.rows_read();
    let gp = gitplan::plan_from_git(
        &*store,
        &Actor::default(),
        &env.repo,
        T,
        "HEAD",
        DiffOptions { prune: true },
    )
    .unwrap();
    let rows = store.rows_read() - before;
    assert!(
        gp.incremental && gp.partial,
        "the plan reads only what changed since the last applied commit"
    );
    let plan = gp.tree_plan.plan.expect("a plan");
    assert_eq!(plan.summary.update, 1);
    assert_eq!(plan.summary.skip, n - 1);
    drop(store);

    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    // A staging-side change, then export --commit.
    env.write(&bot, &text.replace("briefly", "very briefly"));
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.git(&["checkout", "--", "."]);
    let objects = loose_objects(&env.repo);
    let mut store = env.open_store();
    let before = store.rows_read();
    let actor = ferry::service::access::Actor::named("ferry-ci");
    let who = ferry::backend::vcs::Identity {
        name: "Test User".into(),
        email: "test@example.invalid".into(),
    };
    let done = ferry::service::changed_export::export_changes(
        &mut *store,
        &actor,
        &env.repo,
        T,
        "from the store",
        Some(&who),
    )
    .unwrap()
    .expect("only the change is exported");
    let export_rows = store.rows_read() - before;
    assert_eq!(done.written, vec!["agents/agent-00001.yaml".to_string()]);
    assert!(done.commit.is_some());
    assert_eq!(env.read(&bot), text.replace("briefly", "very briefly"));
    drop(store);
    let status = env.git(&["status", "--porcelain", "--", &format!("tenants/{T}")]);
    assert!(
        status.trim().is_empty(),
        "the folder is clean after the commit:\n{status}"
    );
    let objects = loose_objects(&env.repo) - objects;
    (rows, export_rows, objects, one_agent_rows(&env))
}

/// Store rows read by work on one agent: a staging edit (an agent with a
/// sub-agent and tools, found by name) and finding an agent for a publish.
fn one_agent_rows(env: &TestEnv) -> u64 {
    use ferry::service::staging::{apply_edit, find_agent_id, StagingEdit};
    let mut store = env.open_store();
    let before = store.rows_read();
    let edit = StagingEdit::UpdateAgent(serde_json::json!({"instructions": "Be brief."}));
    let done = apply_edit(&mut *store, T, "agent-00002", &edit).unwrap();
    assert!(done.changed);
    find_agent_id(&*store, T, "agent-00003").unwrap();
    store.rows_read() - before
}

/// The counts at 1k and at 10k resources must be equal, and not zero (the
/// store counts what it reads).
fn check_one_change_costs() {
    let small = one_change_costs(1_000);
    let large = one_change_costs(10_000);
    assert!(
        small.0 > 0 && small.1 > 0,
        "the store counts rows read: {small:?}"
    );
    assert_eq!(
        small.0, large.0,
        "store rows read by a one-file plan --ref must not grow with the tenant"
    );
    assert_eq!(
        small.1, large.1,
        "store rows read by a one-change export --commit must not grow with the tenant"
    );
    assert_eq!(
        small.2, large.2,
        "git objects written by a one-change export --commit must not grow with the tenant"
    );
    // The blob, its folder, the tenant folder, `tenants/`, the root tree and the commit.
    assert_eq!(large.2, 6);
    assert!(small.3 > 0, "the store counts rows read: {small:?}");
    assert_eq!(
        small.3, large.3,
        "store rows read by a staging edit of one agent must not grow with the tenant"
    );
}

#[test]
fn one_change_costs_the_same_at_1k_and_10k_resources() {
    check_one_change_costs();
}

#[test]
fn one_change_costs_the_same_at_1k_and_10k_resources_on_postgres() {
    crate::postgres::on_postgres(check_one_change_costs);
}

/// `plan --ref` and a plan of the whole checked-out folder, as JSON without
/// the fields only a git plan has.
fn both_plans(env: &TestEnv, tenant: &str) -> (String, String) {
    let shown = |run: Run| {
        let mut v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("sourceCommit");
            o.remove("drift");
        }
        format!("exit {}\n{v:#}\n{}", run.code, run.stderr)
    };
    let by_ref = env.ferry(&[
        "plan", "--tenant", tenant, "--ref", "HEAD", "--output", "json",
    ]);
    let whole = env.ferry(&["plan", "--tenant", tenant, "--output", "json"]);
    (shown(by_ref), shown(whole))
}

/// `fixtures/acme` in a git repo, with `tenant` applied, its canonical
/// export committed, and that commit applied: the next `plan --ref` counts
/// its changes from there.
fn acme_applied_from_git(tenant: &str) -> TestEnv {
    let env = TestEnv::acme();
    env.git(&["init", "-q"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "acme"]);
    env.ferry(&["apply", "--tenant", tenant, "--yes"]).ok();
    env.ferry(&["export", "--tenant", tenant, "--commit", "-m", "applied"])
        .ok();
    env.ferry(&["apply", "--tenant", tenant, "--ref", "HEAD", "--yes"])
        .ok();
    env
}

#[test]
fn a_plan_of_the_changed_units_says_what_the_whole_plan_says() {
    let tenant = "acme-dev";
    let env = acme_applied_from_git(tenant);
    let dir = format!("tenants/{tenant}");
    let agent = format!("{dir}/agents/support-bot.yaml");
    let tool = format!("{dir}/tools/crm-lookup.yaml");
    // What each edit is, whether only the index entries it touches are read, and the edit.
    type Edit<'a> = (&'a str, bool, Box<dyn Fn(&TestEnv) + 'a>);
    let edits: Vec<Edit> = vec![
        (
            "instructions",
            true,
            Box::new(|e: &TestEnv| {
                let t = e.read(&agent);
                let t = t.replacen("instructions: |\n", "instructions: |\n    Be brief.\n", 1);
                e.write(&agent, &t);
            }),
        ),
        (
            "a dropped tool",
            true,
            Box::new(|e: &TestEnv| {
                let t = e.read(&agent);
                e.write(&agent, &t.replacen("  - crm-lookup\n", "", 1));
            }),
        ),
        (
            "a new tool",
            true,
            Box::new(|e: &TestEnv| {
                let t = e
                    .read(&tool)
                    .replace("name: crm-lookup", "name: crm-lookup-2");
                let t = t
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("id:"))
                    .collect::<Vec<_>>()
                    .join("\n");
                e.write(&format!("{dir}/tools/crm-lookup-2.yaml"), &format!("{t}\n"));
            }),
        ),
        (
            "a document's content, with its contentHash",
            true,
            Box::new(|e: &TestEnv| {
                let (faq, yaml) = (
                    format!("{dir}/documents/billing-faq.md"),
                    format!("{dir}/documents/billing-faq.yaml"),
                );
                let text = format!("{}\nOne more answer.\n", e.read(&faq));
                e.write(&faq, &text);
                let hash = format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex());
                let y: Vec<String> = e
                    .read(&yaml)
                    .lines()
                    .map(|l| {
                        if let Some((indent, _)) = l.split_once("contentHash: ") {
                            format!("{indent}contentHash: {hash}")
                        } else if let Some((indent, _)) = l.split_once("size: ") {
                            format!("{indent}size: {}", text.len())
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                e.write(&yaml, &format!("{}\n", y.join("\n")));
            }),
        ),
        (
            "a document's content file out of step with its contentHash",
            false,
            Box::new(|e: &TestEnv| {
                let faq = format!("{dir}/documents/billing-faq.md");
                let t = e.read(&faq);
                e.write(&faq, &format!("{t}\nOne more answer.\n"));
            }),
        ),
        (
            "a deleted tool still in use",
            false,
            Box::new(|e: &TestEnv| std::fs::remove_file(e.path(&tool)).unwrap()),
        ),
        (
            "a sub-agent cycle",
            false,
            Box::new(|e: &TestEnv| {
                let refund = format!("{dir}/agents/refund-bot.yaml");
                let t = e.read(&refund);
                e.write(&refund, &format!("{t}  subAgents:\n  - support-bot\n"));
            }),
        ),
        (
            "a reference to nothing",
            false,
            Box::new(|e: &TestEnv| {
                let t = e.read(&agent);
                e.write(
                    &agent,
                    &t.replacen("  - crm-lookup\n", "  - crm-lookpu\n", 1),
                );
            }),
        ),
    ];
    for (what, partial, edit) in edits {
        edit(&env);
        env.git(&["add", "-A"]);
        env.git(&["commit", "-qm", what]);
        let (by_ref, whole) = both_plans(&env, tenant);
        assert_eq!(
            by_ref, whole,
            "{what}: plan --ref differs from the whole plan"
        );
        assert!(
            by_ref.contains("\"summary\"") || by_ref.contains("error"),
            "{what}: {by_ref}"
        );
        let store = env.open_store();
        let gp = gitplan::plan_from_git(
            &*store,
            &Actor::default(),
            &env.repo,
            tenant,
            "HEAD",
            DiffOptions { prune: true },
        )
        .unwrap();
        assert_eq!(
            gp.partial, partial,
            "{what}: whether only the touched index entries are read ({} {:?} {:?})",
            gp.incremental, gp.changed_files, gp.tree_plan.diagnostics
        );
        env.git(&["reset", "-q", "--hard", "HEAD~1"]);
    }
}

/// The server's half of a remote `plan --ref`: given the commit the change
/// counts from and only the changed file, it reads only the index entries
/// that file touches, and plans the same update a local plan makes.
#[test]
fn a_server_plans_a_sent_change_from_the_index_entries_it_touches() {
    use base64::Engine;
    let tenant = "acme-dev";
    let env = acme_applied_from_git(tenant);
    let store = env.open_store();
    let since = store.tenant(tenant).unwrap().last_commit;
    let all = store.index(tenant).unwrap().1.len();
    let path = "tools/crm-lookup.yaml";
    let text = env.read(&format!("tenants/{tenant}/{path}"));
    let text = text.replacen("  description: ", "  description: Now faster. ", 1);
    let request = ferry::backend::store::remote::wire::PlanTree {
        since,
        changed: vec![path.to_string()],
        present: vec![path.to_string()],
        files: [(
            path.to_string(),
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        )]
        .into(),
        commit: Some("c0ffee".into()),
        prune: true,
        ..Default::default()
    };
    let before = store.rows_read();
    let answer = ferry::service::remote_plan::answer(&*store, tenant, &request).unwrap();
    let rows = (store.rows_read() - before) as usize;
    let plan = answer.plan.expect("a plan");
    assert_eq!(plan["summary"]["update"], 1, "{plan}");
    assert_eq!(plan["summary"]["skip"], all - 1, "{plan}");
    // Its own entry, its connection and its draft; never the whole index.
    assert!(rows < all / 3, "read {rows} of {all} index rows");
}
