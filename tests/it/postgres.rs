//! The PostgreSQL store: the conformance suite, the main scenarios and its own rules.
//!
//! These tests need a running server: `FERRY_TEST_POSTGRES_URL` names a
//! database the tests may create databases from (`eval "$(.ci/postgres.sh
//! start)"` starts a throwaway cluster and sets it). Without it they skip,
//! and say so once on stderr; with `FERRY_REQUIRE_POSTGRES=1` (as `.ci/run`
//! sets) a missing server fails them instead. Each test gets its own
//! database, so they run in parallel.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use crate::conformance::Fresh;

/// The base URL of the test server, or `None` (after one line on stderr) when there is none.
pub fn base_url() -> Option<String> {
    static SKIPPED: std::sync::Once = std::sync::Once::new();
    match std::env::var("FERRY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("FERRY_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FERRY_REQUIRE_POSTGRES=1 but FERRY_TEST_POSTGRES_URL is not set; start a server with `eval \"$(.ci/postgres.sh start)\"`"
            );
            SKIPPED.call_once(|| {
                // Written past the test harness's capture, so it shows in a plain `cargo test`.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: the PostgreSQL tests were skipped (FERRY_TEST_POSTGRES_URL is not set); run them with `eval \"$(.ci/postgres.sh start)\" && cargo test`"
                );
            });
            None
        }
    }
}

/// A database of its own for one test, dropped with it.
pub struct Database {
    /// The URL of the new database.
    pub url: String,
    admin: String,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `url` with its database name replaced.
fn with_dbname(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("FERRY_TEST_POSTGRES_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A new empty database on the test server, or `None` when the tests are skipped.
pub fn database() -> Option<Database> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let admin = base_url()?;
    let name = format!(
        "ferry_t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to FERRY_TEST_POSTGRES_URL: {e}"));
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    Some(Database {
        url: with_dbname(&admin, &name),
        admin,
        name,
    })
}

/// The conformance suite's factory: a new database.
pub fn fresh() -> Option<Fresh> {
    let db = database()?;
    Some(Fresh {
        url: db.url.clone(),
        base: std::env::temp_dir(),
        token: None,
        faulty: None,
        _guard: Box::new(db),
    })
}

crate::store_conformance!(conformance, crate::postgres::fresh);

/// Run `scenario` with every `TestEnv` it makes on a new PostgreSQL database.
pub fn on_postgres(scenario: fn()) {
    if base_url().is_none() {
        return;
    }
    set_test_store(Some(database));
    scenario();
    set_test_store(None);
}

/// The integration scenarios of the SQLite store, run again on PostgreSQL.
macro_rules! scenarios_on_postgres {
    ($($name:ident => $scenario:path),* $(,)?) => {
        mod scenarios {
            $(
                #[test]
                fn $name() {
                    super::on_postgres($scenario);
                }
            )*
        }
    };
}

scenarios_on_postgres!(
    small_tree_plans_applies_and_settles => crate::core::small_tree_plans_applies_and_settles,
    an_apply_killed_halfway_leaves_the_store_as_it_was => crate::core::an_apply_killed_halfway_leaves_the_store_as_it_was,
    a_saved_plan_applies_and_is_refused_once_the_store_moved => crate::core::a_saved_plan_applies_and_is_refused_once_the_store_moved,
    two_applies_at_once_do_not_interleave => crate::core::two_applies_at_once_do_not_interleave,
    plan_reports_drift_when_the_store_changed_outside_git => crate::git::plan_reports_drift_when_the_store_changed_outside_git,
    publish_cycle => crate::git::publish_cycle,
    revert_of_an_older_publish_keeps_later_changes_and_reports_conflicts => crate::git::revert_of_an_older_publish_keeps_later_changes_and_reports_conflicts,
    dev_to_staging_promotes_the_closure_and_settles => crate::promote::dev_to_staging_promotes_the_closure_and_settles,
    round_trip_create_merge_update => crate::zip::round_trip_create_merge_update,
    upgrade_matches_structure_and_keeps_target_ids => crate::zip::upgrade_matches_structure_and_keeps_target_ids,
    a_library_edit_is_diffed_published_and_reverted_by_the_cli => crate::staging::a_library_edit_is_diffed_published_and_reverted_by_the_cli,
    document_003_edit_diff_publish_history_rollback => crate::serve::document_003_edit_diff_publish_history_rollback,
    document_002_zip_export_and_import_over_http => crate::serve::document_002_zip_export_and_import_over_http,
    export_commit_of_the_drafts_clears_the_drift_of_a_revert => crate::git::export_commit_of_the_drafts_clears_the_drift_of_a_revert,
    merge_matches_the_copies_promoted_from_the_archives_tenant => crate::zip::merge_matches_the_copies_promoted_from_the_archives_tenant,
    manifest_names_a_commit_only_when_it_holds_the_archive => crate::zip::manifest_names_a_commit_only_when_it_holds_the_archive,
    values_encrypted_to_another_key_are_refused_where_the_store_is_at_hand => crate::harden::values_encrypted_to_another_key_are_refused_where_the_store_is_at_hand,
    vars_are_set_stored_encrypted_and_listed_by_name => crate::ux::vars_are_set_from_stdin_stored_encrypted_listed_by_name_and_silence_promote,
    tenant_delete_needs_yes_and_respects_lineage => crate::ux::tenant_delete_needs_yes_and_respects_lineage,
    tenant_delete_needs_an_owner_of_the_tenant => crate::roles::tenant_delete_needs_an_owner_of_the_tenant,
    the_staging_diff_is_rendered_again_only_when_the_store_moves => crate::staging::the_staging_diff_is_rendered_again_only_when_the_store_moves,
);

#[test]
fn the_url_forms_open_the_same_store() {
    let Some(db) = database() else { return };
    let env = TestEnv::new();
    env.ferry(&["--store", &db.url, "tenant", "create", "acme-dev"])
        .ok();
    // The `postgresql://` scheme and the Unix socket form reach the same database.
    let alt = db.url.replacen("postgres://", "postgresql://", 1);
    let list = env.ferry(&["--store", &alt, "tenant", "list"]).ok();
    assert!(list.stdout.contains("acme-dev"), "{}", list.stdout);
    if let Ok(socket) = std::env::var("FERRY_TEST_POSTGRES_SOCKET_URL") {
        let name = db.url.rsplit('/').next().unwrap();
        let socket = socket.replacen("/ferry_test?", &format!("/{name}?"), 1);
        let list = env.ferry(&["--store", &socket, "tenant", "list"]).ok();
        assert!(list.stdout.contains("acme-dev"), "{}", list.stdout);
    }
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = database() else { return };
    let env = TestEnv::new();
    env.ferry(&["--store", &db.url, "tenant", "list"]).ok();
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    c.batch_execute("INSERT INTO ferry_schema (version, applied_at) VALUES (999, 'later')")
        .unwrap();
    let r = env.ferry(&["--store", &db.url, "tenant", "list"]).expect(1);
    assert!(
        r.stderr
            .contains("schema is version 999, newer than this ferry knows"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let env = TestEnv::new();
    let r = env
        .ferry(&[
            "--store",
            "postgres://nobody:s3cret-pw@127.0.0.1:1/none",
            "tenant",
            "list",
        ])
        .expect(1);
    assert!(r.stderr.contains("unavailable"), "{}", r.stderr);
    assert!(!r.stderr.contains("s3cret-pw"), "{}", r.stderr);
}

/// `ferry store migrate` then `ferry store status` on the env's store; returns status as JSON.
fn migrate_and_status(env: &TestEnv, store: &str, back_end: &str) -> serde_json::Value {
    let first = env.ferry(&["--store", store, "store", "migrate"]).ok();
    assert!(
        first.stdout.contains(&format!("{back_end} store schema")),
        "{}",
        first.stdout
    );
    env.ferry(&["--store", store, "tenant", "create", "acme-dev"])
        .ok();
    small_tree(env, "acme-dev");
    env.ferry(&["--store", store, "apply", "--tenant", "acme-dev", "--yes"])
        .ok();
    let again = env.ferry(&["--store", store, "store", "migrate"]).ok();
    assert!(
        again.stdout.contains("nothing to migrate"),
        "{}",
        again.stdout
    );
    let text = env.ferry(&["--store", store, "store", "status"]).ok();
    assert!(text.stdout.contains("tenants:        1"), "{}", text.stdout);
    env.ferry(&["--store", store, "store", "status", "--output", "json"])
        .ok()
        .json()
}

#[test]
fn store_migrate_and_status_on_both_back_ends() {
    let env = TestEnv::new();
    let s = migrate_and_status(&env, "sqlite:.ferry/store.db", "sqlite");
    assert_eq!(s["backEnd"], "sqlite");
    assert_eq!(s["version"], 5);
    assert_eq!(s["tenants"][0]["resources"], 4);
    let Some(db) = database() else { return };
    let env = TestEnv::new();
    let first = env.ferry(&["--store", &db.url, "store", "migrate"]).ok();
    let latest = ferry::backend::store::postgres::schema::latest();
    assert!(
        first
            .stdout
            .contains(&format!("migrated from version 0 to {latest}")),
        "{}",
        first.stdout
    );
    let s = migrate_and_status(&env, &db.url, "postgres");
    assert_eq!(s["backEnd"], "postgres");
    assert_eq!(s["version"], latest);
    assert_eq!(s["tenants"][0]["tenant"], "acme-dev");
    assert_eq!(s["tenants"][0]["resources"], 4);
}

/// Every file of an exported tree, by path.
fn export_files(env: &TestEnv, store: &str, tenant: &str, dir: &str) -> Vec<(String, Vec<u8>)> {
    let out = env.tmp.path().join(dir);
    env.ferry(&[
        "--as",
        "root",
        "--store",
        store,
        "export",
        "--tenant",
        tenant,
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&out)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(&out).unwrap().display().to_string();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// What a user sees of a store: every tenant's export and publish log.
fn what_users_see(env: &TestEnv, store: &str, tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut seen = Vec::new();
    for tenant in ["acme-dev", "acme-staging"] {
        seen.extend(export_files(env, store, tenant, &format!("{tag}-{tenant}")));
        let log = env
            .ferry(&[
                "--as",
                "root",
                "--store",
                store,
                "publishes",
                "--tenant",
                tenant,
                "--output",
                "json",
            ])
            .ok();
        seen.push((format!("publishes {tenant}"), log.stdout.into_bytes()));
        let vars = env
            .ferry(&[
                "--as", "root", "--store", store, "vars", "list", "--tenant", tenant, "--output",
                "json",
            ])
            .ok();
        seen.push((format!("vars {tenant}"), vars.stdout.into_bytes()));
    }
    // The tenants with their resource counts, which a copy counts again.
    let tenants = env
        .ferry(&[
            "--as", "root", "--store", store, "tenant", "list", "--output", "json",
        ])
        .ok();
    assert!(tenants.stdout.contains("resources"), "{}", tenants.stdout);
    seen.push(("tenants".into(), tenants.stdout.into_bytes()));
    seen
}

#[test]
fn store_copy_sqlite_to_postgres_and_back_keeps_everything() {
    let Some(db) = database() else { return };
    let env = TestEnv::acme();
    env.ferry(&["tenant", "create", "acme-staging"]).ok();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "first"])
        .ok();
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "second"])
        .ok();
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--yes",
    ])
    .ok();
    // A ZIP import leaves sync records behind.
    env.ferry(&["tenant", "create", "acme-test"]).ok();
    env.ferry(&[
        "zip",
        "export",
        "--tenant",
        "acme-dev",
        "--agent",
        "support-bot",
        "-o",
        "bot.zip",
    ])
    .ok();
    env.ferry(&[
        "zip",
        "import",
        "--yes",
        "bot.zip",
        "--tenant",
        "acme-test",
        "--strategy",
        "create",
    ])
    .ok();
    for (tenant, name) in [
        ("acme-dev", "CRM_API_KEY"),
        ("acme-dev", "ZENDESK_TOKEN"),
        ("acme-staging", "CRM_API_KEY"),
    ] {
        env.ferry_stdin(&["vars", "set", "--tenant", tenant, name], "s3cret-value\n")
            .ok();
    }
    env.user("root", &[]);
    env.token("root", None);
    // Tokens with an expiry, a last use and a revocation travel with their columns.
    let sqlite = "sqlite:.ferry/store.db";
    let tokens_of = |store: &str| {
        env.ferry(&[
            "--store", store, "--as", "root", "token", "list", "--output", "json",
        ])
        .ok()
        .stdout
    };
    env.ferry(&[
        "--as",
        "root",
        "token",
        "create",
        "--user",
        "root",
        "--expires",
        "30d",
    ])
    .ok();
    let listed: serde_json::Value = serde_json::from_str(&tokens_of(sqlite)).unwrap();
    let first = listed["items"][0]["id"].as_str().unwrap().to_string();
    env.ferry(&["--as", "root", "token", "revoke", &first]).ok();
    let tokens_before = tokens_of(sqlite);
    assert!(tokens_before.contains("revoked") && tokens_before.contains("expiresAt"));
    let before = what_users_see(&env, sqlite, "before");

    let there = env
        .ferry(&["store", "copy", "--from", sqlite, "--to", &db.url])
        .ok();
    assert!(
        there
            .stdout
            .contains("copied 3 tenant(s): acme-dev, acme-staging, acme-test"),
        "{}",
        there.stdout
    );
    for table in [
        "versions",
        "publishes",
        "tokens",
        "users",
        "tenants",
        "tenant_variables",
        "sync_records",
        "grants",
    ] {
        assert!(there.stdout.contains(table), "{}", there.stdout);
    }
    assert!(there.stdout.contains("blake3 "), "{}", there.stdout);
    // Every table of the list carries rows, each checked by count and blake3.
    for (table, rows) in [
        ("tenant_variables", 3),
        ("versions", 0),
        ("publishes", 0),
        ("sync_records", 0),
        ("tokens", 0),
    ] {
        let line = there
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("{table}: {}", there.stdout));
        let count: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(count > 0 && (rows == 0 || count == rows), "{line}");
    }
    assert!(!there.stdout.contains("s3cret-value"), "{}", there.stdout);
    assert_eq!(what_users_see(&env, &db.url, "pg"), before);

    // A target holding the tenants is refused, and changes nothing, unless --force.
    let refused = env
        .ferry(&["store", "copy", "--from", sqlite, "--to", &db.url])
        .expect(1);
    assert!(
        refused
            .stderr
            .contains("already holds tenant(s) `acme-dev`, `acme-staging`, `acme-test`"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    env.ferry(&[
        "store", "copy", "--from", sqlite, "--to", &db.url, "--force",
    ])
    .ok();

    let back = "sqlite:back.db";
    let returned = env
        .ferry(&["store", "copy", "--from", &db.url, "--to", back])
        .ok();
    assert_eq!(
        returned.stdout.lines().skip(1).collect::<Vec<_>>(),
        there.stdout.lines().skip(1).collect::<Vec<_>>(),
        "the same rows and hashes both ways"
    );
    assert_eq!(what_users_see(&env, back, "back"), before);
    assert_eq!(tokens_of(&db.url), tokens_before);
    assert_eq!(tokens_of(back), tokens_before);
}

#[test]
fn two_servers_on_one_database_see_each_others_writes() {
    if base_url().is_none() {
        return;
    }
    set_test_store(Some(database));
    let (env, token) = crate::serve::acme_server_env();
    set_test_store(None);
    let a = Server::start(&env, &[]);
    let b = Server::start(&env, &[]);
    let t = Some(token.as_str());
    let bot = |s: &Server, rest: &str| s.url(&format!("/api/v2/agents/support-bot{rest}"));
    http_json(
        "PUT",
        &bot(&a, ""),
        t,
        &serde_json::json!({"description": "written on A"}),
    )
    .expect(200);
    let seen = http("GET", &bot(&b, ""), t, &[], None).expect(200);
    assert_eq!(seen["spec"]["description"], "written on A", "{seen}");
    http_json(
        "POST",
        &bot(&b, "/publish"),
        t,
        &serde_json::json!({"message": "from B"}),
    )
    .expect(200);
    let log = http("GET", &bot(&a, "/publishes"), t, &[], None).expect(200);
    assert!(log.to_string().contains("from B"), "{log}");
}

#[test]
fn promote_to_store_works_both_ways() {
    let Some(db) = database() else { return };
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["publish", "--tenant", "acme-dev", "-m", "first"])
        .ok();
    env.ferry(&["--store", &db.url, "tenant", "create", "acme-staging"])
        .ok();
    env.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--to-store",
        &db.url,
        "--yes",
    ])
    .ok();
    let there = env
        .ferry(&["--store", &db.url, "tenant", "list", "--output", "json"])
        .ok();
    assert!(there.stdout.contains("acme-staging"), "{}", there.stdout);
    let plan = env
        .ferry(&["--store", &db.url, "store", "status", "--output", "json"])
        .ok()
        .json();
    assert!(
        plan["tenants"][0]["resources"].as_u64().unwrap() > 0,
        "{plan}"
    );
    // And back: from the PostgreSQL store to a SQLite file.
    env.ferry(&["--store", "sqlite:prod.db", "tenant", "create", "acme-prod"])
        .ok();
    env.ferry(&[
        "--store",
        &db.url,
        "promote",
        "--from",
        "acme-staging",
        "--to",
        "acme-prod",
        "--to-store",
        "sqlite:prod.db",
        "--yes",
    ])
    .ok();
    let back = env
        .ferry(&[
            "--store",
            "sqlite:prod.db",
            "store",
            "status",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert!(
        back["tenants"][0]["resources"].as_u64().unwrap() > 0,
        "{back}"
    );
}
