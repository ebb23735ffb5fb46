//! ZIP artifacts: export, create/merge/upgrade import, conflicts, batch, archive safety.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::common::*;
use ferry::service::access::Actor;

const SECRET: &str = "sk-live-51HxQabcdefghijklmnopQRSTUV";
const STAMP: &[&str] = &["--created-at", "2026-01-01T00:00:00Z"];

/// A tenant with a connection holding an encrypted credential, a tool, two
/// workflows, and an agent with snippets. `instructions` and `prefix` vary it.
fn agent_tree(
    env: &TestEnv,
    tenant: &str,
    agent: &str,
    wf: [&str; 2],
    instructions: &str,
    enc: &str,
) {
    let base = format!("tenants/{tenant}");
    env.write(
        &format!("{base}/connections/crm.yaml"),
        &format!("apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\nspec:\n  type: http\n  baseUrl: https://crm.example.com\n  credentials:\n    apiKey: {enc}\n"),
    );
    env.write(
        &format!("{base}/tools/crm-lookup.yaml"),
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: crm-lookup\nspec:\n  description: Look up a customer.\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /customers/{id}\n",
    );
    env.write(
        &format!("{base}/workflows/{}.yaml", wf[0]),
        &format!("apiVersion: ferry/v1\nkind: Workflow\nmetadata:\n  name: {}\nspec:\n  steps:\n  - type: ai.labs.behavior\n  - type: ai.labs.llm\n    tools:\n    - crm-lookup\n", wf[0]),
    );
    env.write(
        &format!("{base}/workflows/{}.yaml", wf[1]),
        &format!("apiVersion: ferry/v1\nkind: Workflow\nmetadata:\n  name: {}\nspec:\n  steps:\n  - type: ai.labs.llm\n    config:\n      temperature: 0.1\n", wf[1]),
    );
    env.write(
        &format!("{base}/agents/{agent}.yaml"),
        &format!("apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: {agent}\nspec:\n  type: chat\n  model:\n    provider: openai\n    name: gpt-4o-mini\n  instructions: |\n    {instructions}\n  snippets:\n  - name: greeting\n    text: Hello!\n  - name: signoff\n    text: Bye.\n  tools:\n  - crm-lookup\n  - builtin/web-search\n  workflows:\n  - {}\n  - {}\n", wf[0], wf[1]),
    );
}

fn encrypt(env: &TestEnv, tenant: &str) -> String {
    env.ferry_stdin(&["secret", "encrypt", "--tenant", tenant], SECRET)
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn setup_source(env: &TestEnv) -> String {
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    let enc = encrypt(env, "acme-dev");
    agent_tree(
        env,
        "acme-dev",
        "support-bot",
        ["triage", "answer"],
        "Be helpful.",
        &enc,
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    enc
}

fn export_agent(env: &TestEnv, tenant: &str, agent: &str, file: &str) {
    export_agent_with(env, tenant, agent, file, &[]);
}

/// [`export_agent`] with more flags (`--selected`, `--agent-version`).
fn export_agent_with(env: &TestEnv, tenant: &str, agent: &str, file: &str, extra: &[&str]) {
    let mut args = vec![
        "zip", "export", "--tenant", tenant, "--agent", agent, "-o", file,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(STAMP);
    env.ferry(&args).ok();
}

fn import(env: &TestEnv, file: &str, tenant: &str, strategy: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "zip",
        "import",
        "--yes",
        file,
        "--tenant",
        tenant,
        "--strategy",
        strategy,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    env.ferry(&args).ok().json()
}

fn count(v: &Value, key: &str) -> usize {
    v[key].as_array().map(Vec::len).unwrap_or(0)
}

fn resources_of(env: &TestEnv, tenant: &str) -> u64 {
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    let arr = list
        .as_array()
        .cloned()
        .or_else(|| list["items"].as_array().cloned())
        .unwrap();
    arr.iter().find(|t| t["name"] == tenant).unwrap()["resources"]
        .as_u64()
        .unwrap()
}

fn row<'a>(preview: &'a Value, ty: &str, name: &str) -> &'a Value {
    preview["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resourceType"] == ty && r["name"] == name)
        .unwrap_or_else(|| panic!("no {ty} row {name} in {preview:#}"))
}

#[test]
pub fn round_trip_create_merge_update() {
    let env = TestEnv::new();
    setup_source(&env);
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "a.zip");

    let created = import(&env, "a.zip", "acme-prod", "create", &[]);
    assert_eq!(count(&created, "created"), 5, "{created:#}");
    assert_eq!(resources_of(&env, "acme-prod"), 5);
    let agent = created["created"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["resourceType"] == "agent")
        .unwrap()
        .clone();
    assert_ne!(agent["localId"], agent["originId"], "create gives new IDs");
    env.ferry(&["export", "--tenant", "acme-prod", "--out", "prod-tree"])
        .ok();
    let yaml = env.read("prod-tree/agents/support-bot.yaml");
    assert!(
        yaml.contains(&format!(
            "originId: {}",
            agent["originId"].as_str().unwrap()
        )),
        "{yaml}"
    );
    let revision = created["revision"].clone();

    let merged = import(&env, "a.zip", "acme-prod", "merge", &[]);
    assert_eq!(count(&merged, "skipped"), 5, "{merged:#}");
    assert_eq!(count(&merged, "updated") + count(&merged, "created"), 0);
    assert_eq!(merged["revision"], revision, "a no-op sync writes nothing");

    let a = env
        .read("tenants/acme-dev/agents/support-bot.yaml")
        .replace("Be helpful.", "Be very helpful.");
    env.write("tenants/acme-dev/agents/support-bot.yaml", &a);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "b.zip");
    let preview = import(&env, "b.zip", "acme-prod", "merge", &["--preview"]);
    assert_eq!(row(&preview, "agent", "support-bot")["action"], "UPDATE");
    let merged = import(&env, "b.zip", "acme-prod", "merge", &[]);
    assert_eq!(count(&merged, "updated"), 1, "{merged:#}");
    let up = &merged["updated"][0];
    assert_eq!(up["resourceType"], "agent");
    assert_eq!(
        up["revision"].as_u64().unwrap(),
        agent["revision"].as_u64().unwrap() + 1
    );
}

#[test]
pub fn upgrade_matches_structure_and_keeps_target_ids() {
    let env = TestEnv::new();
    let enc = setup_source(&env);
    // An extra source workflow, to be created.
    env.write(
        "tenants/acme-dev/workflows/escalate.yaml",
        "apiVersion: ferry/v1\nkind: Workflow\nmetadata:\n  name: escalate\nspec:\n  steps:\n  - type: ai.labs.httpcalls\n",
    );
    let agent = env
        .read("tenants/acme-dev/agents/support-bot.yaml")
        .replace("  - answer\n", "  - answer\n  - escalate\n");
    env.write("tenants/acme-dev/agents/support-bot.yaml", &agent);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "a.zip");

    // An independently built agent with the same shape, other names, one different step and snippet.
    env.ferry(&["tenant", "create", "acme-eu"]).ok();
    let enc_eu = encrypt(&env, "acme-eu");
    agent_tree(
        &env,
        "acme-eu",
        "helpdesk",
        ["w-one", "w-two"],
        "Be helpful.",
        &enc_eu,
    );
    let w2 = env
        .read("tenants/acme-eu/workflows/w-two.yaml")
        .replace("0.1", "0.7");
    env.write("tenants/acme-eu/workflows/w-two.yaml", &w2);
    let a = env
        .read("tenants/acme-eu/agents/helpdesk.yaml")
        .replace("text: Bye.", "text: Cheers.");
    env.write("tenants/acme-eu/agents/helpdesk.yaml", &a);
    env.ferry(&["apply", "--tenant", "acme-eu", "--yes"]).ok();
    env.ferry(&["export", "--tenant", "acme-eu", "--out", "before"])
        .ok();
    let _ = enc;

    let p = import(
        &env,
        "a.zip",
        "acme-eu",
        "upgrade",
        &["--target-agent", "helpdesk", "--preview"],
    );
    assert_eq!(row(&p, "agent", "helpdesk")["action"], "UPDATE", "{p:#}");
    assert_eq!(row(&p, "workflow", "w-one")["action"], "SKIP");
    assert_eq!(row(&p, "workflow", "w-two")["action"], "UPDATE");
    assert_eq!(row(&p, "workflow", "escalate")["action"], "CREATE");
    assert_eq!(row(&p, "tool", "crm-lookup")["action"], "SKIP");
    assert_eq!(
        row(&p, "connection", "crm")["action"],
        "SKIP",
        "the target's own secret never counts"
    );
    assert_eq!(row(&p, "snippet", "greeting")["action"], "SKIP");
    assert_eq!(row(&p, "snippet", "signoff")["action"], "UPDATE");
    assert_eq!(
        row(&p, "workflowStep", "ai.labs.llm")["resourceType"],
        "workflowStep"
    );
    let before_ids: Vec<String> = [
        "agents/helpdesk.yaml",
        "workflows/w-one.yaml",
        "workflows/w-two.yaml",
        "tools/crm-lookup.yaml",
        "connections/crm.yaml",
    ]
    .iter()
    .map(|f| {
        env.read(&format!("before/{f}"))
            .lines()
            .find(|l| l.trim_start().starts_with("id:"))
            .unwrap()
            .to_string()
    })
    .collect();

    let r = import(
        &env,
        "a.zip",
        "acme-eu",
        "upgrade",
        &["--target-agent", "helpdesk"],
    );
    assert_eq!(count(&r, "created"), 1, "{r:#}");
    assert_eq!(count(&r, "failures"), 0, "{r:#}");
    env.ferry(&["export", "--tenant", "acme-eu", "--out", "after"])
        .ok();
    for (f, id) in [
        "agents/helpdesk.yaml",
        "workflows/w-one.yaml",
        "workflows/w-two.yaml",
        "tools/crm-lookup.yaml",
        "connections/crm.yaml",
    ]
    .iter()
    .zip(&before_ids)
    {
        assert!(
            env.read(&format!("after/{f}")).contains(id.as_str()),
            "{f} kept its ID"
        );
    }
    assert!(env.read("after/workflows/w-two.yaml").contains("0.1"));
    assert!(env.read("after/agents/helpdesk.yaml").contains("escalate"));
    assert!(
        env.read("after/connections/crm.yaml").contains(&enc_eu),
        "the target keeps its own secret"
    );
}

#[test]
fn hotfix_is_a_conflict_unless_selected() {
    let env = TestEnv::new();
    setup_source(&env);
    export_agent(&env, "acme-dev", "support-bot", "a.zip");
    env.ferry(&["tenant", "create", "acme-eu"]).ok();
    let enc_eu = encrypt(&env, "acme-eu");
    agent_tree(
        &env,
        "acme-eu",
        "helpdesk",
        ["w-one", "w-two"],
        "Be helpful.",
        &enc_eu,
    );
    env.ferry(&["apply", "--tenant", "acme-eu", "--yes"]).ok();
    import(
        &env,
        "a.zip",
        "acme-eu",
        "upgrade",
        &["--target-agent", "helpdesk"],
    );

    // Hotfix on the target.
    env.ferry(&["export", "--tenant", "acme-eu"]).ok();
    let a = env
        .read("tenants/acme-eu/agents/helpdesk.yaml")
        .replace("Be helpful.", "HOTFIX: be careful.");
    env.write("tenants/acme-eu/agents/helpdesk.yaml", &a);
    env.ferry(&["apply", "--tenant", "acme-eu", "--yes"]).ok();

    // The source moves on: instructions and the tool change.
    let a = env
        .read("tenants/acme-dev/agents/support-bot.yaml")
        .replace("Be helpful.", "Be brief.");
    env.write("tenants/acme-dev/agents/support-bot.yaml", &a);
    let t = env
        .read("tenants/acme-dev/tools/crm-lookup.yaml")
        .replace("Look up a customer.", "Find a customer.");
    env.write("tenants/acme-dev/tools/crm-lookup.yaml", &t);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "b.zip");

    // No --target-agent: the sync record names the agent that came from the source.
    let p = import(&env, "b.zip", "acme-eu", "upgrade", &["--preview"]);
    let agent_row = row(&p, "agent", "helpdesk").clone();
    assert_eq!(agent_row["action"], "CONFLICT", "{p:#}");
    assert_eq!(row(&p, "tool", "crm-lookup")["action"], "UPDATE");
    let r = import(&env, "b.zip", "acme-eu", "upgrade", &[]);
    assert_eq!(count(&r, "failures"), 1, "{r:#}");
    assert_eq!(count(&r, "updated"), 1);
    env.ferry(&["export", "--tenant", "acme-eu", "--out", "mid"])
        .ok();
    assert!(env.read("mid/agents/helpdesk.yaml").contains("HOTFIX"));
    assert!(env
        .read("mid/tools/crm-lookup.yaml")
        .contains("Find a customer."));

    let local = agent_row["localId"].as_str().unwrap();
    let r = import(&env, "b.zip", "acme-eu", "upgrade", &["--selected", local]);
    assert_eq!(count(&r, "updated"), 1, "{r:#}");
    env.ferry(&["export", "--tenant", "acme-eu", "--out", "end"])
        .ok();
    assert!(env.read("end/agents/helpdesk.yaml").contains("Be brief."));

    // An empty selection is an error.
    let e = env
        .ferry(&[
            "zip",
            "import",
            "--yes",
            "b.zip",
            "--tenant",
            "acme-eu",
            "--strategy",
            "upgrade",
            "--selected",
            "",
        ])
        .expect(1);
    assert!(e.stderr.contains("empty"), "{}", e.stderr);
}

#[test]
fn batch_reports_each_agent() {
    let env = TestEnv::new();
    setup_source(&env);
    export_agent(&env, "acme-dev", "support-bot", "a.zip");
    env.ferry(&["tenant", "create", "acme-eu"]).ok();
    agent_tree(
        &env,
        "acme-eu",
        "helpdesk",
        ["w-one", "w-two"],
        "Be helpful.",
        &encrypt(&env, "acme-eu"),
    );
    env.ferry(&["apply", "--tenant", "acme-eu", "--yes"]).ok();
    env.write(
        "map.json",
        r#"[{"file":"a.zip","targetAgent":"helpdesk","selected":null,"workflowOrder":null},
            {"file":"missing.zip","targetAgent":"helpdesk"}]"#,
    );
    let r = env
        .ferry(&[
            "zip",
            "import",
            "--yes",
            "--batch",
            "map.json",
            "--tenant",
            "acme-eu",
            "--strategy",
            "upgrade",
            "--output",
            "json",
        ])
        .expect(1);
    let v = r.json();
    assert_eq!(v["succeeded"], 1);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["results"][0]["ok"], true);
    assert_eq!(v["results"][1]["ok"], false);
}

#[test]
fn export_preview_selection_and_workflow_order() {
    let env = TestEnv::new();
    setup_source(&env);
    let p = env
        .ferry(&[
            "zip",
            "export",
            "--tenant",
            "acme-dev",
            "--agent",
            "support-bot",
            "--preview",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let entries = p["resources"].as_array().unwrap();
    let find = |ty: &str, name: &str| {
        entries
            .iter()
            .find(|e| e["resourceType"] == ty && e["name"] == name)
            .unwrap()
            .clone()
    };
    let agent = find("agent", "support-bot");
    assert_eq!(agent["required"], true);
    assert_eq!(find("workflow", "answer")["required"], true);
    assert_eq!(find("workflow", "answer")["position"], 1);
    assert_eq!(find("tool", "crm-lookup")["required"], false);
    let snip = find("snippet", "greeting");
    assert_eq!(
        snip["id"],
        format!("{}#snippet:greeting", agent["id"].as_str().unwrap())
    );
    let sel = snip["id"].as_str().unwrap().to_string();
    export_agent_with(
        &env,
        "acme-dev",
        "support-bot",
        "sel.zip",
        &["--selected", &sel],
    );
    env.ferry(&["zip", "unpack", "sel.zip", "sel"]).ok();
    assert!(!env.path("sel/tools/crm-lookup.yaml").exists());
    let a = env.read("sel/agents/support-bot.yaml");
    assert!(a.contains("greeting") && !a.contains("signoff"), "{a}");

    export_agent(&env, "acme-dev", "support-bot", "a.zip");
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    import(
        &env,
        "a.zip",
        "acme-prod",
        "create",
        &["--workflow-order", "answer"],
    );
    env.ferry(&["export", "--tenant", "acme-prod", "--out", "prod"])
        .ok();
    let a = env.read("prod/agents/support-bot.yaml");
    assert!(
        a.find("- answer").unwrap() < a.find("- triage").unwrap(),
        "{a}"
    );
}

fn all_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b).unwrap();
            (f.name().unwrap().into_owned(), b)
        })
        .collect()
}

#[test]
fn exported_zip_holds_no_credential_and_other_tools_read_it() {
    let env = TestEnv::new();
    let enc = setup_source(&env);
    export_agent(&env, "acme-dev", "support-bot", "a.zip");
    export_all(&env, "all.zip");
    for f in ["a.zip", "all.zip"] {
        let bytes = std::fs::read(env.path(f)).unwrap();
        let needle = |hay: &[u8], n: &str| hay.windows(n.len()).any(|w| w == n.as_bytes());
        assert!(!needle(&bytes, SECRET) && !needle(&bytes, &enc));
        for (name, b) in all_entries(&bytes) {
            assert!(!needle(&b, SECRET), "{name} holds the secret");
            assert!(!needle(&b, &enc[..40]), "{name} holds the encrypted value");
        }
        // unzip and Python's zipfile accept it.
        let out = std::process::Command::new("unzip")
            .arg("-t")
            .arg(env.path(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = std::process::Command::new("python3")
            .args(["-m", "zipfile", "-t"])
            .arg(env.path(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Exporting twice gives the same bytes; unpack then pack is byte for byte.
    export_agent(&env, "acme-dev", "support-bot", "a2.zip");
    assert_eq!(
        std::fs::read(env.path("a.zip")).unwrap(),
        std::fs::read(env.path("a2.zip")).unwrap()
    );
    env.ferry(&["zip", "unpack", "a.zip", "unpacked"]).ok();
    env.ferry(&["zip", "pack", "unpacked", "-o", "repacked.zip"])
        .ok();
    assert_eq!(
        std::fs::read(env.path("a.zip")).unwrap(),
        std::fs::read(env.path("repacked.zip")).unwrap()
    );

    // A ZIP made by the zip command line from the tree imports (manifest included, and without it).
    let out = std::process::Command::new("zip")
        .current_dir(env.path("unpacked"))
        .args(["-qr", "../cli.zip", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_file(env.path("unpacked/manifest.json")).unwrap();
    let out = std::process::Command::new("zip")
        .current_dir(env.path("unpacked"))
        .args(["-qr", "../plain.zip", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    let r = import(&env, "cli.zip", "acme-prod", "create", &[]);
    assert_eq!(count(&r, "created"), 5, "{r:#}");
    let r = import(&env, "plain.zip", "acme-prod", "merge", &[]);
    assert_eq!(count(&r, "skipped"), 5, "{r:#}");
    // A ZIP written by Python from the tree imports too.
    let py = "import zipfile,os,sys\nz=zipfile.ZipFile(sys.argv[2],'w',zipfile.ZIP_DEFLATED)\nfor d,_,fs in os.walk(sys.argv[1]):\n  for f in fs:\n    p=os.path.join(d,f); z.write(p, os.path.relpath(p, sys.argv[1]))\nz.close()\n";
    let out = std::process::Command::new("python3")
        .current_dir(&env.repo)
        .args(["-c", py, "unpacked", "py.zip"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = import(&env, "py.zip", "acme-prod", "merge", &[]);
    assert_eq!(count(&r, "skipped"), 5, "{r:#}");
}

/// Write a ZIP with the given (name, bytes, unix mode) entries.
fn hostile(path: &Path, entries: &[(&str, Vec<u8>, u32)]) {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        if *mode & 0o170000 == 0o120000 {
            w.add_symlink(*name, String::from_utf8_lossy(data), opts)
                .unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    let bytes = w.finish().unwrap().into_inner();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn hostile_archives_are_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    setup_source(&env);
    export_agent(&env, "acme-dev", "support-bot", "good.zip");
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    let good: Vec<(String, Vec<u8>)> = all_entries(&std::fs::read(env.path("good.zip")).unwrap());
    let tool = good
        .iter()
        .find(|(n, _)| n.starts_with("tools/"))
        .unwrap()
        .1
        .clone();
    let with = |extra: (&'static str, Vec<u8>, u32)| -> Vec<(&'static str, Vec<u8>, u32)> {
        vec![("tools/crm-lookup.yaml", tool.clone(), 0o100644), extra]
    };

    hostile(
        &env.path("dotdot.zip"),
        &with(("../evil.yaml", b"x".to_vec(), 0o100644)),
    );
    hostile(
        &env.path("abs.zip"),
        &with(("/tmp/evil.yaml", b"x".to_vec(), 0o100644)),
    );
    hostile(
        &env.path("link.zip"),
        &with(("tools/link.yaml", b"/etc/passwd".to_vec(), 0o120777)),
    );
    hostile(
        &env.path("bomb.zip"),
        &with(("documents/bomb.txt", vec![0u8; 48 << 20], 0o100644)),
    );
    // Duplicates: write two same-length names, then rename the second in place.
    hostile(
        &env.path("dup.zip"),
        &with(("tools/crm-lookuq.yaml", tool.clone(), 0o100644)),
    );
    let mut b = std::fs::read(env.path("dup.zip")).unwrap();
    let from = b"tools/crm-lookuq.yaml";
    let to = b"tools/crm-lookup.yaml";
    let mut i = 0;
    while i + from.len() <= b.len() {
        if &b[i..i + from.len()] == from {
            b[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    std::fs::write(env.path("dup.zip"), b).unwrap();
    // A wrong manifest hash: the good archive with one entry changed.
    let mut tampered: Vec<(String, Vec<u8>, u32)> = good
        .iter()
        .map(|(n, b)| (n.clone(), b.clone(), 0o100644))
        .collect();
    for e in &mut tampered {
        if e.0.starts_with("agents/") {
            e.1 = String::from_utf8(e.1.clone())
                .unwrap()
                .replace("Be helpful.", "Be evil.")
                .into_bytes();
        }
    }
    let refs: Vec<(&str, Vec<u8>, u32)> = tampered
        .iter()
        .map(|(n, b, m)| (n.as_str(), b.clone(), *m))
        .collect();
    hostile(&env.path("hash.zip"), &refs);

    for (f, needle) in [
        ("dotdot.zip", "../evil.yaml"),
        ("abs.zip", "absolute"),
        ("link.zip", "symbolic link"),
        ("bomb.zip", "bomb"),
        ("dup.zip", "more than once"),
        ("hash.zip", "manifest"),
    ] {
        let r = env
            .ferry(&[
                "zip",
                "import",
                "--yes",
                f,
                "--tenant",
                "acme-prod",
                "--strategy",
                "create",
            ])
            .expect(1);
        assert!(r.stderr.contains(needle), "{f}: {}", r.stderr);
        let dir = format!("out-{f}");
        let r = env.ferry(&["zip", "unpack", f, &dir]).expect(1);
        assert!(r.stderr.contains(needle), "{f}: {}", r.stderr);
        assert!(!env.path(&dir).exists(), "{f}: nothing unpacked");
    }
    assert_eq!(resources_of(&env, "acme-prod"), 0);
    assert!(!env.tmp.path().join("evil.yaml").exists());
}

#[test]
fn export_of_a_published_agent_version() {
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "first"])
        .ok();
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " STAGED-ONLY");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let agent_yaml = |extra: &[&str], file: &str| -> String {
        let mut args = vec![
            "zip",
            "export",
            "--tenant",
            "acme-dev",
            "--agent",
            "support-bot",
            "-o",
            file,
        ];
        args.extend_from_slice(extra);
        env.ferry(&args).ok();
        zip_entry(
            &std::fs::read(env.path(file)).unwrap(),
            "agents/support-bot.yaml",
        )
    };
    assert!(agent_yaml(&[], "now.zip").contains("STAGED-ONLY"));
    assert!(!agent_yaml(&["--agent-version", "1"], "v1.zip").contains("STAGED-ONLY"));
    let r = env
        .ferry(&[
            "zip",
            "export",
            "--tenant",
            "acme-dev",
            "--agent",
            "support-bot",
            "--agent-version",
            "7",
            "-o",
            "v7.zip",
        ])
        .expect(1);
    assert!(r.stderr.contains("no published version 7"), "{}", r.stderr);
    assert!(!env.path("v7.zip").exists());
}

/// Issue 13.3: the copies promoted into acme-prod carry `syncedFrom.id`
/// equal to the IDs in a ZIP exported from acme-dev, so `merge` updates them
/// instead of reporting every one as a CONFLICT; a name taken by a resource
/// of another lineage is a CONFLICT whose hint never names `merge` again.
#[test]
pub fn merge_matches_the_copies_promoted_from_the_archives_tenant() {
    let env = TestEnv::new();
    setup_source(&env);
    let agent = "tenants/acme-dev/agents/support-bot.yaml";
    let text = env.read(agent).replace(
        "  name: support-bot\n",
        "  name: support-bot\n  syncable: true\n",
    );
    env.write(agent, &text);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    env.ferry(&[
        "promote",
        "--yes",
        "--from",
        "acme-dev",
        "--to",
        "acme-prod",
    ])
    .ok();
    assert_eq!(resources_of(&env, "acme-prod"), 5);
    env.write(
        agent,
        &env.read(agent).replace("Be helpful.", "Be very helpful."),
    );
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "dev.zip");

    let preview = import(&env, "dev.zip", "acme-prod", "merge", &["--preview"]);
    let rows = preview["resources"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| r["action"] != "CONFLICT"),
        "{preview:#}"
    );
    let bot = row(&preview, "agent", "support-bot");
    assert_eq!(bot["action"], "UPDATE", "{preview:#}");
    assert_ne!(
        bot["localId"], bot["originId"],
        "the promoted copy's own ID"
    );
    for (ty, name) in [
        ("tool", "crm-lookup"),
        ("connection", "crm"),
        ("workflow", "triage"),
    ] {
        assert_eq!(row(&preview, ty, name)["action"], "SKIP", "{preview:#}");
    }
    let merged = import(&env, "dev.zip", "acme-prod", "merge", &[]);
    assert_eq!(count(&merged, "updated"), 1, "{merged:#}");
    assert_eq!(count(&merged, "created"), 0, "{merged:#}");
    assert_eq!(resources_of(&env, "acme-prod"), 5, "nothing duplicated");
    env.ferry(&["export", "--tenant", "acme-prod", "--out", "prod-tree"])
        .ok();
    let yaml = env.read("prod-tree/agents/support-bot.yaml");
    assert!(yaml.contains("Be very helpful."), "{yaml}");
    assert!(yaml.contains("syncedFrom:"), "lineage kept: {yaml}");

    // A tenant built on its own has the names but not the lineage.
    env.ferry(&["tenant", "create", "acme-eu"]).ok();
    let enc = encrypt(&env, "acme-eu");
    agent_tree(
        &env,
        "acme-eu",
        "support-bot",
        ["triage", "answer"],
        "Be helpful.",
        &enc,
    );
    env.ferry(&["apply", "--tenant", "acme-eu", "--yes"]).ok();
    let preview = import(&env, "dev.zip", "acme-eu", "merge", &["--preview"]);
    let conflict = row(&preview, "tool", "crm-lookup");
    assert_eq!(conflict["action"], "CONFLICT", "{preview:#}");
    let reason = conflict["reason"].as_str().unwrap();
    assert!(reason.contains("exists already"), "{reason}");
    assert!(!reason.contains("--strategy merge"), "{reason}");
    assert!(reason.contains("--strategy upgrade"), "{reason}");
}

/// `ferry zip export --all` of acme-dev into `file`, at a fixed time.
fn export_all(env: &TestEnv, file: &str) {
    env.ferry(&[
        "zip",
        "export",
        "--tenant",
        "acme-dev",
        "--all",
        "-o",
        file,
        "--created-at",
        "2026-01-01T00:00:00Z",
    ])
    .ok();
}

/// A whole-tenant export is read, encoded and compressed a chunk at a time
/// (`export_all`); its archive is the one the scoped export of every
/// resource makes, byte for byte, with and without a repo to check the
/// applied commit against.
#[test]
fn a_whole_tenant_archive_streamed_is_the_scoped_one_byte_for_byte() {
    use ferry::service::zip_export::{self, Scope};
    let env = TestEnv::new();
    setup_source(&env);
    // Enough resources for several chunks of the stream (2,048 each).
    for i in 0..2_100 {
        env.write(
            &format!("tenants/acme-dev/documents/note-{i:04}.yaml"),
            &format!("apiVersion: ferry/v1\nkind: Document\nmetadata:\n  name: note-{i:04}\nspec:\n  title: Note {i}\n  mediaType: text/plain\n  size: {i}\n"),
        );
    }
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["export", "--tenant", "acme-dev", "--commit", "-m", "tree"])
        .ok();
    let store = env.open_store();
    let tagger = ferry::backend::vcs::GitTagger {
        root: env.repo.clone(),
        identity: None,
    };
    let at = "2026-01-01T00:00:00Z";
    for repo in [
        None,
        Some(&tagger as &(dyn ferry::domain::tagging::PublishTagger + Sync)),
    ] {
        let scoped =
            zip_export::scope(&*store, &Actor::default(), "acme-dev", &Scope::All).unwrap();
        let whole = repo.map(|r| r as &dyn ferry::domain::tagging::PublishTagger);
        let whole =
            zip_export::export_scoped(&*store, "acme-dev", scoped, None, "ferry", at, whole)
                .unwrap();
        let file = std::io::Cursor::new(Vec::new());
        let (streamed, file) = zip_export::export_all(
            &*store,
            &Actor::default(),
            "acme-dev",
            "ferry",
            at,
            repo,
            file,
        )
        .unwrap();
        assert_eq!(streamed.manifest, whole.manifest);
        assert_eq!(streamed.scrubbed, whole.scrubbed);
        assert!(
            streamed.scrubbed > 0,
            "the source holds a credential to scrub"
        );
        let bytes = file.into_inner();
        assert_eq!(streamed.bytes, whole.bytes.len() as u64);
        assert!(bytes == whole.bytes, "the archives differ");
        assert!(
            streamed.manifest.source.commit.is_some(),
            "the store holds the applied commit"
        );
    }
}

/// A whole-tenant export that cannot write its archive fails naming the
/// place it could not write, and leaves nothing behind: not over a folder
/// in the archive's place, and not without a temporary folder to hold the
/// compressed parts until they are joined.
#[test]
fn a_whole_tenant_export_that_cannot_write_names_where_and_leaves_nothing() {
    let env = TestEnv::new();
    setup_source(&env);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let out = env.path("out");
    std::fs::create_dir_all(out.join("all.zip")).unwrap();
    let args = ["zip", "export", "--tenant", "acme-dev", "--all", "-o"];
    let r = env.ferry(&[&args[..], &["out/all.zip"]].concat()).expect(1);
    for said in [
        "cannot write out/all.zip: it is a folder",
        "hint: name a file, e.g. out/all.zip/archive.zip",
    ] {
        assert!(r.stderr.contains(said), "{}", r.stderr);
    }
    // Every archive ferry writes goes through the same atomic write.
    let r = env
        .ferry(&["zip", "pack", "tenants/acme-dev", "-o", "out/all.zip"])
        .expect(1);
    assert!(
        r.stderr
            .contains("cannot write out/all.zip: it is a folder"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(out.join("all.zip")).unwrap().count(), 0);
    let names = |dir: &Path| -> std::collections::BTreeSet<_> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    let before = names(&env.repo);
    let mut c = env.cmd();
    let gone = env.path("no-such-folder");
    c.env("TMPDIR", &gone)
        .args([&args[..], &["spilled.zip"]].concat());
    let r = run(c).expect(1);
    let wanted = format!("cannot make a temporary file in {}", gone.display());
    assert!(r.stderr.contains(&wanted), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot write spilled.zip"),
        "{}",
        r.stderr
    );
    assert_eq!(
        names(&env.repo),
        before,
        "the archive or its temporary file was left beside it"
    );
}

/// The `source` object of an exported ZIP's manifest.
fn manifest_source(env: &TestEnv, file: &str) -> Value {
    let bytes = std::fs::read(env.path(file)).unwrap();
    let (_, m) = all_entries(&bytes)
        .into_iter()
        .find(|(n, _)| n == "manifest.json")
        .unwrap();
    serde_json::from_slice::<Value>(&m).unwrap()["source"].clone()
}

/// Issue 13.5: the manifest names a commit only when that commit holds what
/// the store holds; otherwise `"commit": null` and `"dirty": true`.
#[test]
pub fn manifest_names_a_commit_only_when_it_holds_the_archive() {
    let env = TestEnv::new();
    setup_source(&env);
    export_agent(&env, "acme-dev", "support-bot", "never.zip");
    let source = manifest_source(&env, "never.zip");
    assert!(source["commit"].is_null(), "{source}");
    assert_eq!(source["dirty"], true, "{source}");

    env.ferry(&["export", "--tenant", "acme-dev", "--commit", "-m", "tree"])
        .ok();
    let head = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    export_agent(&env, "acme-dev", "support-bot", "clean.zip");
    let source = manifest_source(&env, "clean.zip");
    assert_eq!(source["commit"], head.as_str(), "{source}");
    assert!(source.get("dirty").is_none(), "{source}");
    export_all(&env, "all-clean.zip");
    assert_eq!(
        manifest_source(&env, "all-clean.zip")["commit"],
        head.as_str()
    );

    // An apply of an uncommitted change: HEAD no longer holds the store.
    let agent = "tenants/acme-dev/agents/support-bot.yaml";
    env.write(agent, &env.read(agent).replace("Be helpful.", "Be kind."));
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    export_agent(&env, "acme-dev", "support-bot", "dirty.zip");
    let source = manifest_source(&env, "dirty.zip");
    assert!(source["commit"].is_null(), "{source}");
    assert_eq!(source["dirty"], true, "{source}");
    export_all(&env, "all-dirty.zip");
    assert_eq!(manifest_source(&env, "all-dirty.zip")["dirty"], true);
    // The ZIP still imports (its manifest is checked as before).
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    import(&env, "dirty.zip", "acme-prod", "create", &[]);

    // An older published version is not what the commit holds, though the drafts are.
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "kind"])
        .ok();
    env.write(agent, &env.read(agent).replace("Be kind.", "Be brief."));
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["export", "--tenant", "acme-dev", "--commit", "-m", "brief"])
        .ok();
    export_agent(&env, "acme-dev", "support-bot", "brief.zip");
    let source = manifest_source(&env, "brief.zip");
    assert!(source["commit"].is_string(), "{source}");
    export_agent_with(
        &env,
        "acme-dev",
        "support-bot",
        "v1.zip",
        &["--agent-version", "1"],
    );
    let source = manifest_source(&env, "v1.zip");
    assert!(source["commit"].is_null(), "{source}");
    assert_eq!(source["dirty"], true, "{source}");
}
