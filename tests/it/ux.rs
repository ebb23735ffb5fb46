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

#[test]
fn the_acme_fixture_ignores_its_store() {
    let text =
        std::fs::read_to_string(crate::common::project_root().join("fixtures/acme/.gitignore"))
            .unwrap();
    assert!(text.lines().any(|l| l.trim() == ".ferry/"), "{text}");
    // A copied fixture in a fresh git repository: the store is not untracked.
    let env = TestEnv::acme();
    env.git(&["init", "-q"]);
    let status = env.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains(".ferry"), "{status}");
}

#[test]
fn a_store_git_would_commit_is_warned_about_with_the_line_to_add() {
    let env = TestEnv::new();
    // init's .gitignore keeps the store out: no warning.
    let run = env.ferry(&["tenant", "create", "acme-dev"]).ok();
    assert!(!run.stderr.contains("not ignored"), "{}", run.stderr);
    // Without it, tenant create and apply warn and say what to add.
    std::fs::remove_file(env.path(".gitignore")).unwrap();
    let run = env.ferry(&["tenant", "create", "acme-prod"]).ok();
    assert!(
        run.stderr
            .contains("warning: the store .ferry/store.db lies in the git work tree"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(".gitignore: .ferry/"), "{}", run.stderr);
    small_tree(&env, "acme-dev");
    let run = env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    assert!(
        run.stderr.contains("hint: add this line to"),
        "{}",
        run.stderr
    );
    // Outside a git work tree: nothing to warn about.
    std::fs::remove_dir_all(env.path(".git")).unwrap();
    let run = env.ferry(&["tenant", "create", "acme-test"]).ok();
    assert!(!run.stderr.contains("not ignored"), "{}", run.stderr);
}

#[test]
pub fn tenant_delete_needs_yes_and_respects_lineage() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    env.ferry(&["tenant", "create", "acme-staging"]).ok();
    small_tree(&env, "acme-dev");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--yes",
    ])
    .ok();
    // Without --yes: refused, nothing deleted.
    let run = env.ferry(&["tenant", "delete", "acme-staging"]).expect(1);
    assert!(run.stderr.contains("hint: pass --yes"), "{}", run.stderr);
    // acme-dev is the origin of acme-staging's resources: refused without --force.
    let run = env
        .ferry(&["tenant", "delete", "acme-dev", "--yes"])
        .expect(1);
    assert!(
        run.stderr.contains("is the origin (syncedFrom) of"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("acme-staging: Agent support-bot"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: pass --force"), "{}", run.stderr);
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // A tenant nobody comes from goes with --yes; its folder stays.
    let run = env
        .ferry(&["tenant", "delete", "acme-staging", "--yes"])
        .ok();
    assert!(
        run.stdout.contains("Deleted tenant acme-staging"),
        "{}",
        run.stdout
    );
    assert!(env.path("tenants/acme-staging/tenant.toml").is_file());
    env.ferry(&["plan", "--tenant", "acme-staging"]).expect(1);
    // Now nothing names acme-dev; and --force deletes even a tenant something came from.
    env.ferry(&["tenant", "delete", "acme-dev", "--yes"]).ok();
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    // The name can be used again; the folder's tenant.toml still names the
    // deleted tenant's key, which only --force replaces.
    let run = env.ferry(&["tenant", "create", "acme-dev"]).expect(1);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    env.ferry(&["tenant", "create", "acme-dev", "--force"]).ok();
    let plan = env.plan_json("acme-dev", 2);
    assert_eq!(plan["summary"]["create"], 4, "{plan}");
}

/// acme-dev with the small tree applied and published once (publish 1 created everything).
fn published_once() -> TestEnv {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "first"])
        .ok();
    env
}

#[test]
fn promote_revert_and_zip_import_refuse_without_a_terminal_unless_yes() {
    let env = published_once();
    env.ferry(&["tenant", "create", "acme-staging"]).ok();
    let before = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .stdout;
    // promote: the dry run does not ask; the real one refuses without --yes.
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--dry-run",
    ])
    .ok();
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--preview",
    ])
    .ok();
    let run = env
        .ferry(&["promote", "--from", "acme-dev", "--to", "acme-staging"])
        .expect(1);
    assert!(
        run.stderr
            .contains("promote needs confirmation, and standard input is not a terminal"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: pass --yes"), "{}", run.stderr);
    // zip import: the preview does not ask; the import refuses without --yes.
    env.ferry(&[
        "zip",
        "export",
        "--tenant",
        "acme-dev",
        "--agent",
        "support-bot",
        "-o",
        "s.zip",
    ])
    .ok();
    let import = [
        "zip",
        "import",
        "s.zip",
        "--tenant",
        "acme-staging",
        "--strategy",
        "create",
    ];
    env.ferry(&[&import[..], &["--preview"]].concat()).ok();
    env.ferry(&[&import[..], &["--dry-run"]].concat()).ok();
    let run = env.ferry(&import).expect(1);
    assert!(
        run.stderr.contains("zip import needs confirmation"),
        "{}",
        run.stderr
    );
    // revert: the preview does not ask; the revert refuses without --yes.
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "second"])
        .ok();
    env.ferry(&["revert", "--tenant", "acme-dev", "2", "--preview"])
        .ok();
    let run = env
        .ferry(&["revert", "--tenant", "acme-dev", "2"])
        .expect(1);
    assert!(
        run.stderr.contains("revert needs confirmation"),
        "{}",
        run.stderr
    );
    // Nothing was written by any refusal.
    let after_refusals = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    let staging = after_refusals["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-staging")
        .unwrap();
    assert_eq!(staging["resources"], 0, "{before}\n{after_refusals}");
    env.plan_json("acme-dev", 0);
    // With --yes each one writes.
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--yes",
    ])
    .ok();
    env.ferry(&["revert", "--tenant", "acme-dev", "2", "--yes"])
        .ok();
    env.ferry(&["tenant", "create", "acme-sandbox"]).ok();
    env.ferry(&[
        "zip",
        "import",
        "s.zip",
        "--tenant",
        "acme-sandbox",
        "--strategy",
        "create",
        "--yes",
    ])
    .ok();
}

#[test]
fn revert_names_a_publish_by_number_tag_or_change_id() {
    let env = published_once();
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "second"])
        .ok();
    let log = env
        .ferry(&["publishes", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    let chg = log["items"][0]["changeTrackId"]
        .as_str()
        .unwrap()
        .to_string();
    let preview = |publish: &str| {
        env.ferry(&[
            "revert",
            "--tenant",
            "acme-dev",
            publish,
            "--preview",
            "--output",
            "json",
        ])
        .ok()
        .json()
    };
    let by_id = preview(&chg);
    assert_eq!(by_id["changeTrackId"], chg.as_str());
    assert_eq!(preview("2"), by_id);
    assert_eq!(preview("acme-dev/publish/2"), by_id);
    // A number the tenant does not have, or another tenant's tag: a clear error.
    let run = env
        .ferry(&["revert", "--tenant", "acme-dev", "7", "--preview"])
        .expect(1);
    assert!(
        run.stderr
            .contains("has no publish #7 (it has 2 publish(es))"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: `ferry publishes --tenant acme-dev`"),
        "{}",
        run.stderr
    );
    let run = env
        .ferry(&[
            "revert",
            "--tenant",
            "acme-dev",
            "acme-prod/publish/1",
            "--preview",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("is a publish of tenant `acme-prod`"),
        "{}",
        run.stderr
    );
    // By number, written.
    env.ferry(&["revert", "--tenant", "acme-dev", "2", "--yes"])
        .ok();
    let text = env.ferry(&["diff", "--tenant", "acme-dev"]).ok().stdout;
    assert!(text.contains("Be brief."), "{text}");
}

#[test]
fn a_revert_that_empties_the_tenant_needs_force_and_says_how_many_it_deletes() {
    let env = published_once();
    let run = env
        .ferry(&["revert", "--tenant", "acme-dev", "1", "--preview"])
        .ok();
    assert!(
        run.stderr
            .contains("this revert would delete 4 of the 4 drafts of acme-dev"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("will need --force"), "{}", run.stderr);
    let json = env
        .ferry(&[
            "revert",
            "--tenant",
            "acme-dev",
            "1",
            "--preview",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(json["deletes"], 4, "{json}");
    let run = env
        .ferry(&["revert", "--tenant", "acme-dev", "1", "--yes"])
        .expect(1);
    assert!(
        run.stderr
            .contains("would delete 4 of the 4 drafts of acme-dev, more than half"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: pass --force"), "{}", run.stderr);
    env.plan_json("acme-dev", 0);
    env.ferry(&["revert", "--tenant", "acme-dev", "1", "--yes", "--force"])
        .ok();
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(list["items"][0]["resources"], 0, "{list}");
}

/// `needle` is nowhere in the store: not in the SQLite file and its WAL, nor
/// in a PostgreSQL store's variables, which are all age ciphertexts.
fn assert_not_stored_in_plain_text(env: &TestEnv, needle: &str) {
    let Some(url) = &env.store else {
        let db = std::fs::read(env.path(".ferry/store.db")).unwrap();
        let wal = std::fs::read(env.path(".ferry/store.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the value is in the store file in plain text"
            );
        }
        return;
    };
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let values: Vec<String> = c
        .query("SELECT value FROM tenant_variables", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!values.is_empty());
    for v in values {
        assert!(v.starts_with("ENC[age,") && !v.contains(needle), "{v}");
    }
}

#[test]
pub fn vars_are_set_from_stdin_stored_encrypted_listed_by_name_and_silence_promote() {
    let env = TestEnv::acme();
    env.ferry(&[
        "tenant",
        "create",
        "acme-staging",
        "--environment",
        "staging",
    ])
    .ok();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    // Missing before anything is set.
    let list = env
        .ferry(&["vars", "list", "--tenant", "acme-dev", "--output", "json"])
        .ok()
        .json();
    let missing: Vec<&str> = list["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(missing.contains(&"CRM_BASE_URL"), "{list}");
    assert!(list["set"].as_array().unwrap().is_empty());
    // Set one from stdin: never printed, never stored as plain text.
    let r = env
        .ferry_stdin(
            &["vars", "set", "--tenant", "acme-dev", "CRM_BASE_URL"],
            "https://crm.secret-value-4711.example\n",
        )
        .ok();
    assert!(!r.stdout.contains("4711") && !r.stderr.contains("4711"));
    assert_not_stored_in_plain_text(&env, "4711");
    let text = env.ferry(&["vars", "list", "--tenant", "acme-dev"]).ok();
    assert!(text.stdout.contains("CRM_BASE_URL  set"), "{}", text.stdout);
    assert!(!text.stdout.contains("4711"));
    // An empty value and a bad name are refused.
    let r = env
        .ferry_stdin(&["vars", "set", "--tenant", "acme-dev", "X"], "")
        .expect(1);
    assert!(
        r.stderr.contains("nothing on standard input"),
        "{}",
        r.stderr
    );
    let r = env
        .ferry_stdin(&["vars", "set", "--tenant", "acme-dev", "A-B"], "v")
        .expect(1);
    assert!(r.stderr.contains("not a variable name"), "{}", r.stderr);
    // Promotion warns only about what the target still lacks.
    let before = env
        .ferry(&[
            "promote",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--dry-run",
        ])
        .ok();
    assert!(before.stderr.contains("CRM_BASE_URL"), "{}", before.stderr);
    env.ferry_stdin(
        &["vars", "set", "--tenant", "acme-staging", "CRM_BASE_URL"],
        "https://crm.staging.example",
    )
    .ok();
    let after = env
        .ferry(&[
            "promote",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--dry-run",
        ])
        .ok();
    assert!(!after.stderr.contains("CRM_BASE_URL"), "{}", after.stderr);
    // Unset.
    env.ferry(&["vars", "unset", "--tenant", "acme-staging", "CRM_BASE_URL"])
        .ok();
    let list = env
        .ferry(&[
            "vars",
            "list",
            "--tenant",
            "acme-staging",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert!(list["set"].as_array().unwrap().is_empty(), "{list}");
}

#[test]
fn completions_and_the_man_page_come_from_the_commands() {
    let env = TestEnv::new();
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = env.ferry(&["completions", shell]).ok();
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
        assert!(
            r.stdout.contains("promote"),
            "{shell} completes subcommands"
        );
    }
    let r = env.ferry(&["completions", "tcsh"]).expect(2);
    assert!(r.stderr.contains("possible values"), "{}", r.stderr);
    let man = env.ferry(&["man"]).ok();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH ferry 1"),
        "{}",
        &man.stdout[..100]
    );
    assert!(man.stdout.contains("promote"));
    let help = env.ferry(&["completions", "--help"]).ok();
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
}
