//! Promotion: dev → staging → prod, lineage, secrets, steps, roles, versions.

use std::collections::BTreeMap;

use ferry::backend::store::sqlite::SqliteStore;
use ferry::backend::store::{PublishStore, ResourceStore, Store, VersionRecord};
use ferry::domain::ids::promoted_id;
use ferry::domain::model::{Kind, Resource};

use crate::common::*;

const PLAIN: &str = "sk-live-Pr0moteMeButNeverPrintMe-4242";

/// The default store of a test repo.
fn store(env: &TestEnv) -> Box<dyn Store + Send> {
    env.open_store()
}

/// The drafts of a tenant by (kind, name).
fn drafts(env: &TestEnv, tenant: &str) -> BTreeMap<(Kind, String), Resource> {
    store(env)
        .all_drafts(tenant)
        .unwrap()
        .into_iter()
        .map(|r| ((r.kind(), r.name().to_string()), r))
        .collect()
}

fn id_of(map: &BTreeMap<(Kind, String), Resource>, kind: Kind, name: &str) -> String {
    map[&(kind, name.to_string())].id().unwrap().to_string()
}

/// A dev tree: a syncable agent with its closure, plus things left behind.
fn dev_tree(env: &TestEnv, tenant: &str) {
    let enc = env
        .ferry_stdin(&["secret", "encrypt", "--tenant", tenant], PLAIN)
        .ok()
        .stdout
        .trim()
        .to_string();
    let base = format!("tenants/{tenant}");
    env.write(
        &format!("{base}/documents/refund-policy.yaml"),
        "apiVersion: ferry/v1\nkind: Document\nmetadata:\n  name: refund-policy\nspec:\n  title: Refund policy\n  mediaType: text/markdown\n",
    );
    env.write(
        &format!("{base}/knowledgeBases/billing-faq.yaml"),
        "apiVersion: ferry/v1\nkind: KnowledgeBase\nmetadata:\n  name: billing-faq\nspec:\n  documents:\n  - refund-policy\n",
    );
    env.write(
        &format!("{base}/connections/crm.yaml"),
        &format!("apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\n  createdBy: dora\nspec:\n  type: http\n  baseUrl: ${{vars.CRM_URL}}\n  credentials:\n    apiKey: ${{vars.CRM_API_KEY}}\n    token: {enc}\n"),
    );
    env.write(
        &format!("{base}/tools/crm-lookup.yaml"),
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: crm-lookup\nspec:\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /customers/{id}\n",
    );
    env.write(
        &format!("{base}/tools/orphan.yaml"),
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: orphan\nspec:\n  type: javascript\n  code: return 1;\n",
    );
    env.write(
        &format!("{base}/agents/refund-bot.yaml"),
        "apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: refund-bot\nspec:\n  type: chat\n  model:\n    provider: openai\n    name: gpt-4o-mini\n  instructions: |\n    Handle refunds.\n",
    );
    support_bot(env, tenant, "Cite the knowledge base in every answer.");
}

fn support_bot(env: &TestEnv, tenant: &str, line: &str) {
    env.write(
        &format!("tenants/{tenant}/agents/support-bot.yaml"),
        &format!("apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: support-bot\n  syncable: true\n  createdBy: dora\nspec:\n  type: supervisor\n  model:\n    provider: openai\n    name: gpt-4o-mini\n  instructions: |\n    You are Acme's support assistant.\n    {line}\n  tools:\n  - crm-lookup\n  - builtin/web-search\n  knowledgeBases:\n  - billing-faq\n  subAgents:\n  - refund-bot\n"),
    );
}

/// A repo with tenants created and acme-dev applied from `dev_tree`.
fn setup(tenants: &[&str]) -> TestEnv {
    let env = TestEnv::new();
    for t in tenants {
        env.ferry(&["tenant", "create", t]).ok();
    }
    dev_tree(&env, "acme-dev");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env
}

/// What a run said, on stdout (`--output json` errors) and stderr.
fn both(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

fn promote(env: &TestEnv, from: &str, to: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "promote", "--yes", "--from", from, "--to", to, "--output", "json",
    ];
    args.extend_from_slice(extra);
    env.ferry(&args)
}

/// `promote` as a person types it, in text: refusals come on stderr, line by line.
fn promote_text(env: &TestEnv, from: &str, to: &str, extra: &[&str]) -> Run {
    let mut args = vec!["promote", "--yes", "--from", from, "--to", to];
    args.extend_from_slice(extra);
    env.ferry(&args)
}

const CLOSURE: [(Kind, &str); 6] = [
    (Kind::Document, "refund-policy"),
    (Kind::KnowledgeBase, "billing-faq"),
    (Kind::Connection, "crm"),
    (Kind::Tool, "crm-lookup"),
    (Kind::Agent, "refund-bot"),
    (Kind::Agent, "support-bot"),
];

#[test]
pub fn dev_to_staging_promotes_the_closure_and_settles() {
    let env = setup(&["acme-dev", "acme-staging"]);
    env.write(
        "tenants/acme-staging/tools/staging-only.yaml",
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: staging-only\nspec:\n  type: javascript\n  code: return 2;\n",
    );
    env.ferry(&["apply", "--tenant", "acme-staging", "--yes"])
        .ok();
    let before_only =
        drafts(&env, "acme-staging")[&(Kind::Tool, "staging-only".to_string())].clone();

    let dry = promote(&env, "acme-dev", "acme-staging", &["--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["summary"]["create"], 6);
    assert_eq!(dry["applied"], false);
    assert_eq!(
        drafts(&env, "acme-staging").len(),
        1,
        "dry run changed nothing"
    );
    let steps: Vec<&str> = dry["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "documents",
            "connections",
            "knowledgeBases",
            "tools",
            "agents"
        ]
    );
    assert_eq!(
        dry["missingVariables"],
        serde_json::json!(["CRM_API_KEY", "CRM_URL"])
    );

    let run = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(run["applied"], true);
    assert_eq!(run["summary"]["create"], 6);
    assert!(
        run.get("absent").is_none(),
        "target-only resources are not reported"
    );

    let dev = drafts(&env, "acme-dev");
    let stg = drafts(&env, "acme-staging");
    assert_eq!(stg.len(), 7);
    assert!(
        !stg.contains_key(&(Kind::Tool, "orphan".to_string())),
        "non-syncable orphan stays behind"
    );
    for (kind, name) in CLOSURE {
        let dev_id = id_of(&dev, kind, name);
        let r = &stg[&(kind, name.to_string())];
        assert_eq!(
            r.id().unwrap(),
            promoted_id("acme-dev", "acme-staging", &dev_id, kind)
        );
        let from = r.metadata.synced_from.as_ref().unwrap();
        assert_eq!(
            (from.tenant.as_str(), from.id.as_str()),
            ("acme-dev", dev_id.as_str())
        );
    }
    let bot = &stg[&(Kind::Agent, "support-bot".to_string())];
    assert_eq!(bot.metadata.created_by.as_deref(), Some("dora"));
    let refs: Vec<String> = {
        let mut v = Vec::new();
        let mut b = bot.clone();
        b.visit_refs_mut(&mut |_, r| v.push(r.clone()));
        v
    };
    assert_eq!(
        refs,
        [
            id_of(&stg, Kind::Tool, "crm-lookup"),
            "builtin/web-search".to_string(),
            id_of(&stg, Kind::KnowledgeBase, "billing-faq"),
            id_of(&stg, Kind::Agent, "refund-bot"),
        ]
    );
    assert_eq!(stg[&(Kind::Tool, "staging-only".to_string())], before_only);

    // Again: all SKIP, no duplicates.
    let again = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(again["summary"]["create"], 0);
    assert_eq!(again["summary"]["update"], 0);
    assert_eq!(again["summary"]["skip"], 6);
    assert_eq!(again["applied"], false);
    assert_eq!(drafts(&env, "acme-staging").len(), 7);

    // One change in dev: exactly one UPDATE.
    support_bot(&env, "acme-dev", "Always be brief.");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let one = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(one["summary"]["update"], 1);
    assert_eq!(one["summary"]["create"], 0);
    assert_eq!(one["summary"]["skip"], 5);
    assert_eq!(one["actions"][0]["name"], "support-bot");
    assert_eq!(one["actions"][0]["changes"][0]["path"], "spec.instructions");
    assert_eq!(
        drafts(&env, "acme-staging")[&(Kind::Tool, "staging-only".to_string())],
        before_only
    );
}

#[test]
fn text_output_groups_by_step() {
    let env = setup(&["acme-dev", "acme-staging"]);
    let run = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
        ])
        .ok();
    let doc = run.stdout.find("  documents").unwrap();
    let agents = run.stdout.find("  agents").unwrap();
    assert!(doc < agents, "{}", run.stdout);
    assert!(run.stdout.contains("+ Agent support-bot"), "{}", run.stdout);
    assert!(both(&run).contains("CRM_API_KEY"), "{}", run.stderr);
}

fn prod_ids(env: &TestEnv) -> BTreeMap<(Kind, String), String> {
    drafts(env, "acme-prod")
        .into_iter()
        .map(|(k, r)| (k, r.id().unwrap().to_string()))
        .collect()
}

#[test]
fn lineage_chain_gives_the_same_prod_ids_and_refuses_going_back() {
    let chain = setup(&["acme-dev", "acme-staging", "acme-prod"]);
    promote(&chain, "acme-dev", "acme-staging", &[]).ok();
    let to_prod = promote(&chain, "acme-staging", "acme-prod", &[])
        .ok()
        .json();
    assert_eq!(to_prod["summary"]["create"], 6);

    let direct = setup(&["acme-dev", "acme-prod"]);
    promote(&direct, "acme-dev", "acme-prod", &[]).ok();

    let a = prod_ids(&chain);
    assert_eq!(a.len(), 6);
    assert_eq!(a, prod_ids(&direct));
    let dev = drafts(&chain, "acme-dev");
    let prod = drafts(&chain, "acme-prod");
    let bot = &prod[&(Kind::Agent, "support-bot".to_string())];
    let from = bot.metadata.synced_from.as_ref().unwrap();
    assert_eq!(from.tenant, "acme-dev");
    assert_eq!(from.id, id_of(&dev, Kind::Agent, "support-bot"));

    // Back into a tenant of the lineage: refused, nothing changed.
    let before = drafts(&chain, "acme-dev");
    let back = promote(&chain, "acme-staging", "acme-dev", &[]).expect(1);
    assert!(both(&back).contains("lineage"), "{}", back.stderr);
    assert!(
        both(&back).contains("came from `acme-dev`"),
        "{}",
        back.stderr
    );
    assert!(
        both(&back).contains("Agent `support-bot`"),
        "{}",
        back.stderr
    );
    assert_eq!(drafts(&chain, "acme-dev"), before);
}

/// Every file under the repo (trees, store files), as lossy text.
fn all_files_text(env: &TestEnv) -> Vec<(String, String)> {
    walkdir::WalkDir::new(&env.repo)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file() && !e.path().components().any(|c| c.as_os_str() == ".git")
        })
        .map(|e| {
            (
                e.path().display().to_string(),
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned(),
            )
        })
        .collect()
}

#[test]
fn secrets_are_re_encrypted_and_never_shown() {
    let env = setup(&["acme-dev", "acme-staging"]);
    let mut outputs = Vec::new();
    let r = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--dry-run",
        ])
        .ok();
    outputs.push(r.stdout + &r.stderr);
    let r = promote(&env, "acme-dev", "acme-staging", &[]).ok();
    outputs.push(r.stdout + &r.stderr);

    let st = store(&env);
    let token = |tenant: &str| -> String {
        let d = drafts(&env, tenant);
        match &d[&(Kind::Connection, "crm".to_string())].spec {
            ferry::domain::model::Spec::Connection(c) => c.credentials["token"].clone(),
            _ => unreachable!(),
        }
    };
    let (dev_tok, stg_tok) = (token("acme-dev"), token("acme-staging"));
    assert!(ferry::domain::secrets::is_encrypted(&stg_tok));
    assert_ne!(dev_tok, stg_tok);
    let plain = ferry::domain::secrets::decrypt(
        "acme-staging",
        &st.identity("acme-staging").unwrap(),
        &stg_tok,
    )
    .unwrap();
    assert_eq!(plain, PLAIN.as_bytes());
    assert!(ferry::domain::secrets::decrypt(
        "acme-dev",
        &st.identity("acme-dev").unwrap(),
        &stg_tok
    )
    .is_err());
    drop(st);

    // The template expression stays verbatim.
    let d = drafts(&env, "acme-staging");
    match &d[&(Kind::Connection, "crm".to_string())].spec {
        ferry::domain::model::Spec::Connection(c) => {
            assert_eq!(c.credentials["apiKey"], "${vars.CRM_API_KEY}");
            assert_eq!(c.base_url, "${vars.CRM_URL}");
        }
        _ => unreachable!(),
    }

    // A re-promotion keeps the ciphertext: SKIP.
    let again = promote(&env, "acme-dev", "acme-staging", &[]).ok();
    assert_eq!(again.json()["summary"]["update"], 0);
    assert_eq!(token("acme-staging"), stg_tok);
    outputs.push(again.stdout + &again.stderr);

    // The staging tree, by export and by --write-tree.
    let r = env.ferry(&["export", "--tenant", "acme-staging"]).ok();
    outputs.push(r.stdout + &r.stderr);
    let r = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--write-tree",
        ])
        .ok();
    outputs.push(r.stdout + &r.stderr);
    assert!(env
        .read("tenants/acme-staging/connections/crm.yaml")
        .contains(&stg_tok));

    for o in &outputs {
        assert!(!o.contains(PLAIN), "plaintext in output:\n{o}");
    }
    for (path, text) in all_files_text(&env) {
        assert!(!text.contains(PLAIN), "plaintext in {path}");
    }
}

#[test]
fn an_undecryptable_secret_is_refused_without_showing_it() {
    let env = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        env.ferry(&["tenant", "create", t]).ok();
    }
    // Encrypted to the wrong tenant: dev's key cannot open it.
    let wrong = env
        .ferry_stdin(&["secret", "encrypt", "--tenant", "acme-staging"], PLAIN)
        .ok()
        .stdout
        .trim()
        .to_string();
    env.write(
        "tenants/acme-dev/connections/crm.yaml",
        &format!("apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\n  syncable: true\nspec:\n  type: http\n  baseUrl: https://crm.example.com\n  credentials:\n    token: {wrong}\n"),
    );
    // Apply refuses it (the tenant's key cannot open it), naming the field.
    let r = env
        .ferry(&["apply", "--tenant", "acme-dev", "--yes"])
        .expect(1);
    assert!(r.stderr.contains("spec.credentials.token"), "{}", r.stderr);
    assert!(!r.stderr.contains(&wrong) && !r.stderr.contains(PLAIN));
    // A store written before that check may still hold one: promote refuses it too.
    let own = env
        .ferry_stdin(&["secret", "encrypt", "--tenant", "acme-dev"], PLAIN)
        .ok()
        .stdout
        .trim()
        .to_string();
    let text = env.read("tenants/acme-dev/connections/crm.yaml");
    env.write(
        "tenants/acme-dev/connections/crm.yaml",
        &text.replace(&wrong, &own),
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let mut s = store(&env);
    let (revision, _) = s.index("acme-dev").unwrap();
    let mut crm = s.all_drafts("acme-dev").unwrap().pop().unwrap();
    let spec = serde_json::to_string(&crm.spec.to_json())
        .unwrap()
        .replace(&own, &wrong);
    crm.spec = ferry::domain::model::Spec::from_json(
        Kind::Connection,
        serde_json::from_str(&spec).unwrap(),
    )
    .unwrap();
    let batch = ferry::backend::store::WriteBatch {
        base_revision: revision,
        upserts: vec![(
            ferry::backend::store::BatchDraft::Owned(Box::new(crm)),
            "legacy".into(),
        )],
        ..Default::default()
    };
    s.write("acme-dev", &batch).unwrap();
    drop(s);
    let r = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
        ])
        .expect(1);
    assert!(both(&r).contains("Connection `crm`"), "{}", r.stderr);
    assert!(both(&r).contains("spec.credentials.token"), "{}", r.stderr);
    assert!(!both(&r).contains(PLAIN) && !r.stdout.contains(PLAIN));
    assert!(drafts(&env, "acme-staging").is_empty());
}

#[test]
fn steps_run_alone_only_when_their_dependencies_are_there() {
    let steps = TestEnv::new()
        .ferry(&["steps", "--output", "json"])
        .ok()
        .json();
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

    let env = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        env.ferry(&["tenant", "create", t]).ok();
    }
    small_tree(&env, "acme-dev");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();

    let r = promote(&env, "acme-dev", "acme-staging", &["--step", "agents"]).expect(1);
    assert!(
        both(&r).contains("step `agents` cannot run alone"),
        "{}",
        r.stderr
    );
    assert!(
        both(&r).contains("Tool `crm-lookup` (needed by Agent `support-bot`)"),
        "{}",
        r.stderr
    );
    let r = promote(&env, "acme-dev", "acme-staging", &["--step", "tools"]).expect(1);
    assert!(both(&r).contains("Connection `crm`"), "{}", r.stderr);
    assert!(drafts(&env, "acme-staging").is_empty());

    let c = promote(&env, "acme-dev", "acme-staging", &["--step", "connections"])
        .ok()
        .json();
    assert_eq!(c["summary"]["create"], 1);
    let t = promote(&env, "acme-dev", "acme-staging", &["--step", "tools"])
        .ok()
        .json();
    assert_eq!(t["summary"]["create"], 1);
    assert_eq!(t["step"], "tools");
    let a = promote(&env, "acme-dev", "acme-staging", &["--step", "agents"])
        .ok()
        .json();
    assert_eq!(a["summary"]["create"], 2, "support-bot and its sub-agent");
    let all = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(all["summary"]["skip"], 4);
    assert_eq!(all["summary"]["create"], 0);

    let r = promote(&env, "acme-dev", "acme-staging", &["--step", "gadgets"]).expect(1);
    assert!(both(&r).contains("unknown step `gadgets`"), "{}", r.stderr);
}

#[test]
fn only_admins_of_both_tenants_may_promote() {
    let env = setup(&["acme-dev", "acme-staging"]);
    env.ferry(&["user", "add", "olga"]).ok();
    for u in ["vera", "ed", "adam", "ada"] {
        env.ferry(&["user", "add", u, "--as", "olga"]).ok();
    }
    let grant = |u: &str, t: &str, r: &str| env.ferry(&["grant", u, t, r, "--as", "olga"]).ok();
    grant("vera", "acme-dev", "viewer");
    grant("vera", "acme-staging", "viewer");
    grant("ed", "acme-dev", "editor");
    grant("ed", "acme-staging", "editor");
    grant("adam", "acme-dev", "admin");
    grant("ada", "acme-dev", "admin");
    grant("ada", "acme-staging", "owner");

    for (user, needle) in [
        ("vera", "only the viewer role"),
        ("ed", "only the editor role"),
        (
            "adam",
            "tenant `acme-staging`, and `adam` has no role there",
        ),
        ("nobody", "not a user of this store"),
    ] {
        let r = promote(&env, "acme-dev", "acme-staging", &["--as", user]).expect(1);
        assert!(both(&r).contains(needle), "{user}: {}", r.stderr);
    }
    assert!(drafts(&env, "acme-staging").is_empty());
    promote(
        &env,
        "acme-dev",
        "acme-staging",
        &["--dry-run", "--as", "olga"],
    )
    .ok();
    let ok = promote(&env, "acme-dev", "acme-staging", &["--as", "ada"])
        .ok()
        .json();
    assert_eq!(ok["summary"]["create"], 6);

    // Only owners manage users and grants.
    let r = env
        .ferry(&["user", "add", "mallory", "--as", "ada"])
        .expect(1);
    assert!(both(&r).contains("needs a store owner"), "{}", r.stderr);
    let r = env
        .ferry(&["grant", "ed", "acme-dev", "owner", "--as", "adam"])
        .expect(1);
    assert!(both(&r).contains("owner role"), "{}", r.stderr);
    env.ferry(&["grant", "ed", "acme-staging", "admin", "--as", "ada"])
        .ok();
    let r = env
        .ferry(&["grant", "ed", "acme-dev", "emperor", "--as", "olga"])
        .expect(1);
    assert!(both(&r).contains("unknown role"), "{}", r.stderr);
    let users = env.ferry(&["user", "list", "--output", "json"]).ok().json();
    assert_eq!(users["items"][0]["name"], "ada");
    assert_eq!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["owner"] == true)
            .count(),
        1
    );
}

#[test]
fn store_to_store_promotion_carries_published_versions() {
    let env = setup(&["acme-dev"]);
    // Publish two versions of support-bot and one of crm in the source store.
    {
        let mut st = store(&env);
        let d = drafts(&env, "acme-dev");
        let mut records = Vec::new();
        for (kind, name, n) in [
            (Kind::Agent, "support-bot", 2u64),
            (Kind::Connection, "crm", 1),
        ] {
            let r = d[&(kind, name.to_string())].clone();
            for v in 1..=n {
                let mut r = r.clone();
                if let ferry::domain::model::Spec::Agent(a) = &mut r.spec {
                    a.description = Some(format!("version {v}"));
                }
                records.push(VersionRecord {
                    id: r.id().unwrap().to_string(),
                    version: v,
                    resource: r,
                    change_id: Some(format!("chg_{v}")),
                    published_at: format!("2026-01-0{v}T00:00:00Z"),
                });
            }
        }
        st.put_versions("acme-dev", &records).unwrap();
    }
    env.ferry(&["tenant", "create", "acme-prod", "--store", "sqlite:prod.db"])
        .ok();
    let run = promote(
        &env,
        "acme-dev",
        "acme-prod",
        &["--to-store", "sqlite:prod.db"],
    )
    .ok()
    .json();
    assert_eq!(run["summary"]["create"], 6);
    assert_eq!(run["versions"]["create"], 3);

    let src = store(&env);
    let dst = SqliteStore::open(&env.path("prod.db")).unwrap();
    let prod: BTreeMap<(Kind, String), Resource> = dst
        .all_drafts("acme-prod")
        .unwrap()
        .into_iter()
        .map(|r| ((r.kind(), r.name().to_string()), r))
        .collect();
    let dev = drafts(&env, "acme-dev");
    for (kind, name) in [(Kind::Agent, "support-bot"), (Kind::Connection, "crm")] {
        let s = src
            .versions("acme-dev", &[id_of(&dev, kind, name)])
            .unwrap();
        let t = dst
            .versions("acme-prod", &[id_of(&prod, kind, name)])
            .unwrap();
        let shape = |v: &[VersionRecord]| -> Vec<(u64, Option<String>, String, Option<String>)> {
            v.iter()
                .map(|r| {
                    let desc = match &r.resource.spec {
                        ferry::domain::model::Spec::Agent(a) => a.description.clone(),
                        _ => None,
                    };
                    (r.version, r.change_id.clone(), r.published_at.clone(), desc)
                })
                .collect()
        };
        assert_eq!(shape(&s), shape(&t), "{name}");
        for v in &t {
            assert_eq!(v.resource.id(), Some(id_of(&prod, kind, name).as_str()));
            assert_eq!(
                v.resource.metadata.synced_from.as_ref().unwrap().tenant,
                "acme-dev"
            );
        }
    }
    // The source store did not get the target tenant, and the target tenant lives only in prod.db.
    assert!(src.tenant("acme-prod").is_err());
    drop((src, dst));

    let again = promote(
        &env,
        "acme-dev",
        "acme-prod",
        &["--to-store", "sqlite:prod.db"],
    )
    .ok()
    .json();
    assert_eq!(again["versions"]["skip"], 3);
    assert_eq!(again["versions"]["create"], 0);
    assert_eq!(again["applied"], false);
}

#[test]
fn write_tree_writes_a_reviewable_tree_that_applies_from_git() {
    let env = setup(&["acme-dev", "acme-staging"]);
    let r = promote(&env, "acme-dev", "acme-staging", &["--write-tree"])
        .ok()
        .json();
    assert_eq!(r["applied"], false);
    assert!(
        drafts(&env, "acme-staging").is_empty(),
        "--write-tree leaves the store alone"
    );
    let bot = env.read("tenants/acme-staging/agents/support-bot.yaml");
    assert!(bot.contains("syncedFrom:"), "{bot}");
    assert!(
        bot.contains("- crm-lookup") && bot.contains("- builtin/web-search"),
        "{bot}"
    );
    assert!(!env.path("tenants/acme-staging/tools/orphan.yaml").exists());
    env.ferry(&["validate", "--tenant", "acme-staging"]).ok();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "Promote acme-dev to acme-staging"]);
    let applied = env
        .ferry(&[
            "apply",
            "--tenant",
            "acme-staging",
            "--yes",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(applied["summary"]["create"], 6);
    let again = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(again["summary"]["skip"], 6);
    assert_eq!(again["summary"]["update"], 0);
}

#[test]
fn bad_promotions_are_refused_and_change_nothing() {
    let env = setup(&["acme-dev", "acme-staging"]);
    let r = promote(&env, "acme-dev", "acme-dev", &[]).expect(1);
    assert!(both(&r).contains("into itself"), "{}", r.stderr);
    let r = promote(&env, "acme-dev", "acme-nowhere", &[]).expect(1);
    assert!(
        both(&r).contains("`acme-nowhere` does not exist"),
        "{}",
        r.stderr
    );
    assert!(
        both(&r).contains("ferry tenant create acme-nowhere"),
        "{}",
        r.stderr
    );

    // A resource made directly in staging holds a name the promotion needs.
    env.write(
        "tenants/acme-staging/tools/crm-lookup.yaml",
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: crm-lookup\nspec:\n  type: javascript\n  code: return 3;\n",
    );
    env.ferry(&["apply", "--tenant", "acme-staging", "--yes"])
        .ok();
    let before = drafts(&env, "acme-staging");
    let r = promote(&env, "acme-dev", "acme-staging", &[]).expect(1);
    assert!(both(&r).contains("Tool `crm-lookup`"), "{}", r.stderr);
    assert!(
        both(&r).contains("created in `acme-staging` directly"),
        "{}",
        r.stderr
    );
    assert_eq!(drafts(&env, "acme-staging"), before);
}

#[test]
fn nothing_syncable_is_a_warning_not_an_error() {
    let env = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        env.ferry(&["tenant", "create", t]).ok();
    }
    env.write(
        "tenants/acme-dev/tools/t.yaml",
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: t\nspec:\n  type: javascript\n  code: return 1;\n",
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let r = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
        ])
        .ok();
    assert!(r.stdout.contains("Nothing to promote."), "{}", r.stdout);
    assert!(both(&r).contains("marked syncable"), "{}", r.stderr);
}

#[test]
fn bad_user_input_is_refused() {
    let env = setup(&["acme-dev", "acme-staging"]);
    let r = env.ferry(&["user", "add", "Not A Name"]).expect(1);
    assert!(both(&r).contains("user name `Not A Name`"), "{}", r.stderr);
    let r = env
        .ferry(&["grant", "ghost", "acme-dev", "viewer"])
        .expect(1);
    assert!(
        both(&r).contains("user `ghost` does not exist"),
        "{}",
        r.stderr
    );
    let r = env
        .ferry(&["grant", "ghost", "acme-nowhere", "viewer"])
        .expect(1);
    assert!(
        both(&r).contains("`acme-nowhere` does not exist"),
        "{}",
        r.stderr
    );
    env.write(
        "tenants/acme-staging/tenant.toml",
        "name = \"acme-staging\"\nvariables = 3\n",
    );
    let r = promote(&env, "acme-dev", "acme-staging", &[]).expect(1);
    assert!(both(&r).contains("tenant.toml"), "{}", r.stderr);
    assert!(drafts(&env, "acme-staging").is_empty());
}

/// Set `[promotion] chain` in the test repo's ferry.toml.
fn set_chain(env: &TestEnv, tenants: &[&str]) {
    let path = env.repo.join("ferry.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let list: Vec<String> = tenants.iter().map(|t| format!("\"{t}\"")).collect();
    let text = text.replace("chain = []", &format!("chain = [{}]", list.join(", ")));
    assert!(text.contains("chain = ["), "{text}");
    std::fs::write(path, text).unwrap();
}

const CHAIN: [&str; 3] = ["acme-dev", "acme-staging", "acme-prod"];

#[test]
fn with_a_chain_promotion_goes_one_step_forward_only() {
    let env = setup(&CHAIN);
    set_chain(&env, &CHAIN);

    // Skipping staging is refused, with the chain and the way forward.
    let before = drafts(&env, "acme-prod");
    let skip = promote_text(&env, "acme-dev", "acme-prod", &[]).expect(1);
    assert!(
        skip.stderr
            .contains("against the promotion chain acme-dev → acme-staging → acme-prod"),
        "{}",
        skip.stderr
    );
    assert!(
        skip.stderr.contains("it skips `acme-staging`"),
        "{}",
        skip.stderr
    );
    assert!(
        skip.stderr.contains(
            "hint: promote one step at a time: acme-dev → acme-staging → acme-prod; or pass --against-chain"
        ),
        "{}",
        skip.stderr
    );
    assert_eq!(drafts(&env, "acme-prod"), before);
    // With --output json the same refusal is the one error shape on stdout.
    let answer = promote(&env, "acme-dev", "acme-prod", &[]).expect(1).json();
    assert!(
        answer["error"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("promote one step at a time"),
        "{answer}"
    );
    assert_eq!(drafts(&env, "acme-prod"), before);

    let first = promote(&env, "acme-dev", "acme-staging", &[]).ok().json();
    assert_eq!(first["summary"]["create"], 6);
    assert!(first.get("againstChain").is_none(), "{first}");
    promote(&env, "acme-staging", "acme-prod", &[]).ok();

    // Backward is refused and changes nothing.
    let before = drafts(&env, "acme-staging");
    let back = promote_text(&env, "acme-prod", "acme-staging", &[]).expect(1);
    assert!(
        back.stderr
            .contains("`acme-staging` comes before `acme-prod`"),
        "{}",
        back.stderr
    );
    assert!(
        back.stderr
            .contains("hint: `acme-staging` is promoted from `acme-dev` only"),
        "{}",
        back.stderr
    );
    assert_eq!(drafts(&env, "acme-staging"), before);

    // A tenant outside the chain is against it too.
    env.ferry(&["tenant", "create", "acme-scratch"]).ok();
    let off = promote_text(&env, "acme-dev", "acme-scratch", &[]).expect(1);
    assert!(
        off.stderr.contains("`acme-scratch` is not in the chain"),
        "{}",
        off.stderr
    );
    assert!(
        off.stderr.contains("hint: add the tenant"),
        "{}",
        off.stderr
    );
}

#[test]
fn against_the_chain_is_allowed_when_asked_and_recorded() {
    let env = setup(&CHAIN);
    set_chain(&env, &CHAIN);
    let skip = promote(&env, "acme-dev", "acme-prod", &["--against-chain"])
        .ok()
        .json();
    assert_eq!(skip["applied"], true);
    assert_eq!(skip["summary"]["create"], 6);
    assert_eq!(skip["againstChain"]["from"], "acme-dev");
    assert_eq!(skip["againstChain"]["chain"], serde_json::json!(CHAIN));
    assert_eq!(
        skip["againstChain"]["departure"],
        serde_json::json!({"kind": "skips", "tenants": ["acme-staging"]})
    );
    let warnings = skip["warnings"].to_string();
    assert!(
        warnings.contains(
            "promoted against the chain acme-dev → acme-staging → acme-prod from `acme-dev` to `acme-prod`: it skips `acme-staging`"
        ),
        "{warnings}"
    );
    assert_eq!(drafts(&env, "acme-prod").len(), 6);

    // Backward, in text: the record is printed as a warning.
    let back = env
        .ferry(&[
            "promote",
            "--yes",
            "--from",
            "acme-prod",
            "--to",
            "acme-staging",
            "--against-chain",
        ])
        .ok();
    assert!(
        back.stderr.contains(
            "promoted against the chain acme-dev → acme-staging → acme-prod from `acme-prod` to `acme-staging`: `acme-staging` comes before `acme-prod`"
        ),
        "{}",
        back.stderr
    );
    assert!(
        back.stdout.contains("Promoted to acme-staging"),
        "{}",
        back.stdout
    );
    assert_eq!(drafts(&env, "acme-staging").len(), 6);
}

#[test]
fn without_a_chain_any_order_goes_as_before() {
    let env = setup(&CHAIN);
    let direct = promote(&env, "acme-dev", "acme-prod", &[]).ok().json();
    assert_eq!(direct["summary"]["create"], 6);
    assert!(direct.get("againstChain").is_none(), "{direct}");
    assert!(
        !direct["warnings"].to_string().contains("chain"),
        "{direct}"
    );
    let back = promote(&env, "acme-prod", "acme-staging", &[]).ok().json();
    assert_eq!(back["summary"]["create"], 6);
}

#[test]
fn a_chain_naming_a_tenant_twice_is_refused() {
    let env = setup(&["acme-dev", "acme-staging"]);
    set_chain(&env, &["acme-dev", "acme-staging", "acme-dev"]);
    let r = promote_text(&env, "acme-dev", "acme-staging", &[]).expect(1);
    assert!(
        r.stderr
            .contains("ferry.toml: [promotion] chain: tenant `acme-dev` appears more than once"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: list each tenant once"),
        "{}",
        r.stderr
    );
    assert!(drafts(&env, "acme-staging").is_empty());
}

#[test]
fn a_lineage_refusal_lists_ten_resources_a_line_then_how_many_more() {
    let env = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        env.ferry(&["tenant", "create", t]).ok();
    }
    for i in 0..13 {
        env.write(
            &format!("tenants/acme-dev/tools/tool-{i:02}.yaml"),
            &format!("apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: tool-{i:02}\n  syncable: true\nspec:\n  type: javascript\n  code: return {i};\n"),
        );
    }
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    promote(&env, "acme-dev", "acme-staging", &[]).ok();
    let before = drafts(&env, "acme-dev");
    let back = promote_text(&env, "acme-staging", "acme-dev", &[]).expect(1);
    let lines: Vec<&str> = back.stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: refusing to promote from `acme-staging` to `acme-dev`")
            && lines[0].contains("lineage of 13 resources, which came from `acme-dev`"),
        "{}",
        back.stderr
    );
    let listed: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  Tool `"))
        .copied()
        .collect();
    assert_eq!(listed.len(), 10, "{}", back.stderr);
    assert_eq!(listed[0], "  Tool `tool-00`");
    assert_eq!(listed[9], "  Tool `tool-09`");
    assert!(lines.contains(&"  and 3 more"), "{}", back.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hint: promotion flows one way only")),
        "{}",
        back.stderr
    );
    assert!(lines.iter().all(|l| l.len() < 200), "{}", back.stderr);
    assert_eq!(drafts(&env, "acme-dev"), before);
}
