//! The remote store: every command against a `ferry serve` on loopback
//! (`FERRY_STORE=http://…`, `FERRY_TOKEN`), the server holding a SQLite
//! store in another folder. The acceptance of the shared-store issue, roles
//! refused by the server's token user, the same scenario against SQLite and
//! remote with the same output, an unreachable server, and the store
//! contract (`conformance.rs`) run against the remote store.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

use crate::common::{copy_dir, git_at, http, project_root, run, Run, Server, TestEnv};
use crate::conformance::Fresh;

/// A `ferry serve` over its own folder's store: acme-dev (and acme-staging)
/// created there, `root` the store owner, and root's token.
struct Hub {
    /// The server's folder (a config repo of its own, not the client's).
    env: TestEnv,
    server: Server,
    root: String,
}

fn hub() -> Hub {
    let env = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        env.ferry(&["tenant", "create", t, "--environment", "dev"])
            .ok();
    }
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let root = env.token("root", None);
    let server = Server::start(&env, &[]);
    Hub { env, server, root }
}

impl Hub {
    /// `ferry ARGS` in `dir` against this server, with root's token.
    fn as_root(&self, dir: &Path, args: &[&str]) -> Run {
        ferry_at(dir, &self.server.base, Some(&self.root), args)
    }

    /// The store revision the server reports.
    fn revision(&self) -> u64 {
        http("GET", &self.server.url("/health"), None, &[], None).expect(200)["revision"]
            .as_u64()
            .unwrap()
    }
}

/// A fresh clone of `fixtures/acme` (no `.ferry/` folder) at `tmp/<name>`.
fn clone_of_acme(tmp: &Path, name: &str) -> PathBuf {
    let origin = tmp.join(format!("{name}-origin"));
    copy_dir(&project_root().join("fixtures/acme"), &origin);
    git_at(&origin, &["init", "-q", "-b", "main"]);
    git_at(&origin, &["add", "-A"]);
    git_at(&origin, &["commit", "-q", "-m", "acme"]);
    let clone = tmp.join(name);
    git_at(
        tmp,
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    assert!(!clone.join(".ferry").exists());
    clone
}

/// `ferry ARGS` in `dir` against `store`, with `token` in FERRY_TOKEN when given.
fn ferry_at(dir: &Path, store: &str, token: Option<&str>, args: &[&str]) -> Run {
    ferry_fed(dir, store, token, args, None)
}

/// [`ferry_at`], with `input` on standard input when given.
fn ferry_fed(
    dir: &Path,
    store: &str,
    token: Option<&str>,
    args: &[&str],
    input: Option<&str>,
) -> Run {
    let mut c = Command::cargo_bin("ferry").unwrap();
    if let Some(input) = input {
        c.write_stdin(input.to_string());
    }
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FERRY_STORE", store)
        .env_remove("FERRY_USER")
        .env_remove("FERRY_TOKEN")
        .env("GIT_AUTHOR_NAME", "Test User")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test User")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .args(args);
    if let Some(t) = token {
        c.env("FERRY_TOKEN", t);
    }
    run(c)
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_fresh_clone_plans_applies_and_exports_against_a_remote_server() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let plan = [
        "plan",
        "--tenant",
        "acme-dev",
        "--ref",
        "HEAD",
        "--detailed-exitcode",
    ];
    hub.as_root(&client, &plan).expect(2);
    hub.as_root(
        &client,
        &["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"],
    )
    .ok();
    hub.as_root(&client, &plan).expect(0);
    assert!(
        !client.join(".ferry").exists(),
        "the client made a local store"
    );

    let remote_out = hub.env.tmp.path().join("remote-export");
    let local_out = hub.env.tmp.path().join("local-export");
    let out = remote_out.display().to_string();
    hub.as_root(&client, &["export", "--tenant", "acme-dev", "--out", &out])
        .ok();
    hub.env
        .ferry(&[
            "--as",
            "root",
            "export",
            "--tenant",
            "acme-dev",
            "--out",
            local_out.to_str().unwrap(),
        ])
        .ok();
    let exported = files(&remote_out);
    assert!(exported.len() > 5, "{exported:?}");
    assert_eq!(exported, files(&local_out));

    // The server recorded the commit: the next plan from git is incremental and empty.
    let json = hub
        .as_root(
            &client,
            &[
                "plan", "--tenant", "acme-dev", "--ref", "HEAD", "--output", "json",
            ],
        )
        .ok()
        .json();
    assert!(json["sourceCommit"].is_string(), "{json}");
}

#[test]
fn a_viewer_token_is_refused_on_apply_publish_and_promote_and_nothing_changes() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let url = hub.server.base.clone();
    hub.as_root(
        &client,
        &["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"],
    )
    .ok();
    hub.env
        .user("vic", &[("acme-dev", "viewer"), ("acme-staging", "viewer")]);
    let vic = hub.env.token("vic", None);
    let before = hub.revision();
    let attempts: [(&[&str], &str); 3] = [
        (
            &[
                "apply",
                "--tenant",
                "acme-dev",
                "--from",
                "tenants/acme-dev",
                "--yes",
                "--prune",
            ],
            "editor role",
        ),
        (
            &["publish", "--tenant", "acme-dev", "-m", "go live"],
            "admin role",
        ),
        (
            &[
                "promote",
                "--from",
                "acme-dev",
                "--to",
                "acme-staging",
                "--yes",
            ],
            "admin role",
        ),
    ];
    std::fs::remove_file(client.join("tenants/acme-dev/evaluations/support-bot-smoke.yaml"))
        .unwrap();
    for (args, role) in attempts {
        let r = ferry_at(&client, &url, Some(&vic), args).expect(1);
        assert!(r.stderr.contains(role), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("`vic`"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(hub.revision(), before);
    // The viewer may read.
    ferry_at(
        &client,
        &url,
        Some(&vic),
        &["publishes", "--tenant", "acme-dev"],
    )
    .ok();
}

#[test]
fn the_server_checks_roles_itself_whatever_the_client_does() {
    let hub = hub();
    hub.env.user("vic", &[("acme-dev", "viewer")]);
    let vic = hub.env.token("vic", None);
    let batch = serde_json::json!({"base_revision": 0, "upserts": [], "deletes": ["tol_x"], "refresh": [], "commit": null, "versions": [], "syncs": null});
    let before = hub.revision();
    let answer = crate::common::http_json(
        "POST",
        &hub.server.url("/api/ferry/v1/tenants/acme-dev/write"),
        Some(&vic),
        &batch,
    );
    let body = answer.expect(403);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("needs the editor role"), "{body}");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("ferry grant 'vic' acme-dev editor"),
        "{body}"
    );
    let answer = crate::common::http_json(
        "POST",
        &hub.server.url("/api/ferry/v1/tenants/acme-dev/write"),
        None,
        &batch,
    );
    answer.expect(401);
    assert_eq!(hub.revision(), before);
    let me = http(
        "GET",
        &hub.server.url("/api/ferry/v1/whoami"),
        Some(&vic),
        &[],
        None,
    )
    .expect(200);
    assert_eq!(me["user"], "vic");
    let doc = http("GET", &hub.server.url("/openapi.json"), None, &[], None).expect(200);
    assert!(doc["paths"]["/api/ferry/v1/tenants/{tenant}/write"]["post"].is_object());
}

#[test]
fn a_stale_plan_is_refused_by_the_server_with_both_revisions() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let saved = hub.env.tmp.path().join("plan.json");
    let saved = saved.to_str().unwrap();
    hub.as_root(&client, &["plan", "--tenant", "acme-dev", "--out", saved])
        .ok();
    hub.as_root(&client, &["apply", "--tenant", "acme-dev", "--yes"])
        .ok();
    let before = hub.revision();
    let r = hub
        .as_root(&client, &["apply", "--plan", saved, "--yes"])
        .expect(1);
    assert!(
        r.stderr
            .contains("changed since the plan was made (plan revision"),
        "{}",
        r.stderr
    );
    assert_eq!(hub.revision(), before);
}

/// Mask what differs between two runs by nature: times, and the change IDs made from them.
fn masked(text: &str) -> String {
    // RFC 3339 UTC seconds (2026-12-02T16:00:00Z) become `<time>`.
    let b = text.as_bytes();
    let mut timed = String::new();
    let mut i = 0;
    while i < b.len() {
        let is_time = i + 20 <= b.len()
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 19] == b'Z'
            && b[i..i + 4].iter().all(u8::is_ascii_digit);
        if is_time {
            timed.push_str("<time>");
            i += 20;
        } else {
            let c = text[i..].chars().next().unwrap();
            timed.push(c);
            i += c.len_utf8();
        }
    }
    // Change IDs and each store's own tenant keys.
    let mut out = timed;
    for prefix in ["chg_", "age1"] {
        let mut masked = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(prefix) {
            masked.push_str(&rest[..i]);
            masked.push_str(prefix);
            masked.push_str("<id>");
            rest = rest[i + 4..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

#[test]
fn one_scenario_gives_the_same_output_against_sqlite_and_remote() {
    let hub = hub();
    // The SQLite side: a store made the same way, in a folder of its own.
    let local = TestEnv::new();
    for t in ["acme-dev", "acme-staging"] {
        local
            .ferry(&["tenant", "create", t, "--environment", "dev"])
            .ok();
    }
    local.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let sqlite = format!("sqlite:{}", local.repo.join(".ferry/store.db").display());
    let scenario: &[&[&str]] = &[
        &["tenant", "list", "--output", "json"],
        &["validate", "--tenant", "acme-dev"],
        &[
            "plan", "--tenant", "acme-dev", "--ref", "HEAD", "--output", "json",
        ],
        &["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"],
        &["diff", "--tenant", "acme-dev", "--output", "json"],
        &["publish", "--tenant", "acme-dev", "-m", "first"],
        &["publishes", "--tenant", "acme-dev", "--output", "json"],
        &[
            "promote",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--yes",
        ],
        &[
            "plan",
            "--tenant",
            "acme-dev",
            "--ref",
            "HEAD",
            "--detailed-exitcode",
        ],
        &["user", "list", "--output", "json"],
    ];
    let tmp = hub.env.tmp.path();
    let (a, b) = (
        clone_of_acme(tmp, "via-sqlite"),
        clone_of_acme(tmp, "via-remote"),
    );
    for args in scenario {
        let mut with_as = vec!["--as", "root"];
        with_as.extend_from_slice(args);
        let l = ferry_at(&a, &sqlite, None, &with_as);
        let r = ferry_at(&b, &hub.server.base, Some(&hub.root), &with_as);
        let (lo, ro) = (
            l.stdout.replace(a.to_str().unwrap(), "<clone>"),
            r.stdout.replace(b.to_str().unwrap(), "<clone>"),
        );
        assert_eq!(
            (l.code, masked(&lo)),
            (r.code, masked(&ro)),
            "{args:?}\nsqlite stderr: {}\nremote stderr: {}",
            l.stderr,
            r.stderr
        );
    }
    let (ea, eb) = (tmp.join("ea"), tmp.join("eb"));
    ferry_at(
        &a,
        &sqlite,
        None,
        &[
            "--as",
            "root",
            "export",
            "--tenant",
            "acme-staging",
            "--out",
            ea.to_str().unwrap(),
        ],
    )
    .ok();
    ferry_at(
        &b,
        &hub.server.base,
        Some(&hub.root),
        &[
            "export",
            "--tenant",
            "acme-staging",
            "--out",
            eb.to_str().unwrap(),
        ],
    )
    .ok();
    let text = |dir: &Path| -> Vec<(String, String)> {
        files(dir)
            .into_iter()
            .map(|(p, b)| (p, masked(&String::from_utf8_lossy(&b))))
            .collect()
    };
    let (ta, tb) = (text(&ea), text(&eb));
    assert_eq!(ta.len(), tb.len());
    for (fa, fb) in ta.iter().zip(&tb) {
        assert_eq!(fa, fb);
    }
}

#[test]
fn an_unreachable_server_or_a_missing_token_is_a_clear_error() {
    let client = clone_of_acme(tempfile::tempdir().unwrap().keep().as_path(), "client");
    // Port 9 (discard) on loopback: nothing listens there.
    let r = ferry_at(
        &client,
        "http://127.0.0.1:9",
        Some("fy_x"),
        &["tenant", "list"],
    )
    .expect(1);
    assert!(
        r.stderr
            .contains("cannot reach the ferry server at http://127.0.0.1:9"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: check that `ferry serve` runs there"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("fy_x"), "{}", r.stderr);
    let r = ferry_at(&client, "http://127.0.0.1:9", None, &["store", "status"]).expect(1);
    assert!(
        r.stderr
            .contains("run `ferry store` commands on the server"),
        "{}",
        r.stderr
    );
    let r = ferry_at(&client, "http://127.0.0.1:9", None, &["tenant", "list"]).expect(1);
    assert!(
        r.stderr.contains("no token for the ferry server"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("FERRY_TOKEN"), "{}", r.stderr);
    let r = ferry_at(
        &client,
        "http://user:pw@127.0.0.1:9",
        None,
        &["tenant", "list"],
    )
    .expect(1);
    assert!(!r.stderr.contains("pw"), "{}", r.stderr);
}

#[test]
fn the_token_comes_from_a_file_and_an_unknown_one_is_refused() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let file = hub.env.tmp.path().join("token");
    std::fs::write(&file, format!("{}\n", hub.root)).unwrap();
    let r = ferry_at(
        &client,
        &hub.server.base,
        None,
        &["--token-file", file.to_str().unwrap(), "tenant", "list"],
    )
    .ok();
    assert!(r.stdout.contains("acme-dev"), "{}", r.stdout);
    let r = ferry_at(
        &client,
        &hub.server.base,
        Some("fy_not_a_token"),
        &["tenant", "list"],
    )
    .expect(1);
    assert!(
        r.stderr.contains("not known to this server"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: set FERRY_TOKEN"), "{}", r.stderr);
    assert!(!r.stderr.contains("fy_not_a_token"), "{}", r.stderr);
    let r = hub
        .as_root(&client, &["--as", "mallory", "tenant", "list"])
        .expect(1);
    assert!(
        r.stderr.contains("does not match the token's user `root`"),
        "{}",
        r.stderr
    );
    // Token lifecycle through the server: list (IDs, never a token), revoke, then refused.
    hub.env.user("vic", &[("acme-dev", "viewer")]);
    let vic = hub.env.token("vic", None);
    let vic_at = |args: &[&str]| ferry_at(&client, &hub.server.base, Some(&vic), args);
    let list = vic_at(&["token", "list", "--output", "json"]).ok().json();
    let mine = list["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1, "{list}");
    assert!(!list.to_string().contains(&vic), "{list}");
    vic_at(&["token", "revoke", mine[0]["id"].as_str().unwrap()]).ok();
    let r = vic_at(&["tenant", "list"]).expect(1);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    assert!(
        !hub.server.log().contains(&hub.root),
        "the token reached the server log"
    );
}

/// The remote factory: a `ferry serve` on loopback over a new SQLite store
/// whose one user, `root`, owns it and holds the token the store is opened with.
pub fn remote_fresh() -> Fresh {
    let mut env = TestEnv::empty();
    std::fs::create_dir_all(&env.repo).unwrap();
    let url = format!("sqlite:{}", env.tmp.path().join("store.db").display());
    let token = "fy_conformance_owner_token";
    {
        let mut store = ferry::backend::store::open(&url, &env.repo).unwrap();
        store.add_user("root").unwrap();
        store
            .add_token(
                &ferry::service::access::token_hash(token),
                "root",
                None,
                None,
            )
            .unwrap();
    }
    env.store = Some(url.clone());
    let server = Server::start(&env, &[]);
    let faulty = crate::conformance::Faulty {
        start: Box::new(move |fault| {
            let ferry::backend::store::WriteFault::FailAfter(rows) = fault else {
                panic!("a server's writes can be made to fail, not to abort the test");
            };
            let mut other = TestEnv::empty();
            std::fs::create_dir_all(&other.repo).unwrap();
            other.store = Some(url.clone());
            let rows = rows.to_string();
            let vars = [("FERRY_TEST_FAIL_AFTER_WRITES", rows.as_str())];
            let server = Server::start_with_vars(&other, &[], &vars);
            (server.base.clone(), Box::new((server, other)))
        }),
        kept: Default::default(),
    };
    Fresh {
        url: server.base.clone(),
        base: env.repo.clone(),
        token: Some(token.to_string()),
        faulty: Some(faulty),
        _guard: Box::new((server, env)),
    }
}

// The store contract against the remote store: every property but four,
// left out because they cannot hold for a store behind a server:
// - `the_first_user_owns_the_store`: a remote store is reached only with a
//   token, and a token belongs to a user, so its store is never without users;
// - `sessions_are_kept_by_hash_and_expire`: web UI sessions live in the
//   store of the server that serves the UI, and a remote store refuses them;
// - `token_times_and_uses_are_recorded_as_given`: the server's clock is the
//   authority for when a token was revoked or last used, and it records a
//   token's use itself as its requests arrive; a client sets neither
//   (`tokens_are_listed_and_revoked_once_by_id` runs);
// - `a_read_snapshot_sees_one_state`: each call is its own request, which
//   the server reads in one snapshot of its own; no snapshot spans requests.
// An injected write fault reaches the server's store through a second
// `ferry serve` over the same database whose write connection fails
// (`Faulty` in the factory).
mod conformance {
    crate::store_conformance!(@tests super::remote_fresh;
        tenants_are_created_and_listed_by_name,
        a_duplicate_tenant_is_refused,
        an_unknown_tenant_is_refused,
        drafts_round_trip_through_a_write,
        drafts_come_in_chunks_by_id,
        the_tenant_keeps_its_resource_count,
        the_staging_stamp_moves_with_every_change,
        the_index_summarises_every_draft,
        id_names_give_each_resources_kind_and_name,
        reference_closures_follow_references_transitively,
        a_write_is_one_transaction,
        a_stale_batch_is_refused_with_both_revisions,
        a_write_that_changes_nothing_bumps_nothing,
        a_resource_revision_moves_only_with_its_content,
        drafts_record_their_creator_and_last_change,
        a_write_moves_only_its_own_tenant,
        the_source_commit_is_recorded_once,
        versions_are_kept_as_written,
        publish_numbers_count_from_one,
        a_publish_with_a_wrong_number_is_refused,
        production_is_the_latest_published_version,
        publish_changes_pair_each_version_with_the_one_before,
        drift_lists_what_changed_since_the_last_apply_from_git,
        grants_name_known_users_and_tenants,
        tokens_are_found_by_their_hash_only,
        a_token_hash_and_id_are_recorded_once,
        tokens_are_listed_and_revoked_once_by_id,
        sync_records_are_kept_per_source,
        variables_are_kept_per_tenant_by_name,
        deleting_a_tenant_removes_everything_it_holds,
    );
}

#[test]
fn tokens_are_made_listed_and_revoked_through_a_remote_server() {
    let hub = hub();
    hub.env.user("vic", &[("acme-dev", "viewer")]);
    let vic = hub.env.token("vic", None);
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let dir = client.as_path();
    let url = hub.server.base.clone();
    let made = ferry_at(
        dir,
        &url,
        Some(&vic),
        &["token", "create", "--user", "vic", "--expires", "12h"],
    )
    .ok();
    let second = made.stdout.trim().to_string();
    assert!(made.stderr.contains("expires 20"), "{}", made.stderr);
    // vic sees their two tokens, never root's, and never a token itself.
    let list = ferry_at(
        dir,
        &url,
        Some(&vic),
        &["token", "list", "--output", "json"],
    )
    .ok();
    let rows = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["user"] == "vic"), "{rows:?}");
    assert!(!list.stdout.contains(&second) && !list.stdout.contains(&vic));
    let expiring = rows.iter().find(|r| r["expiresAt"].is_string()).unwrap();
    let id = expiring["id"].as_str().unwrap();
    // Revoking root's token is refused; revoking their own works, and it then gets 401.
    let all = ferry_at(
        dir,
        &url,
        Some(&hub.root),
        &["token", "list", "--output", "json"],
    )
    .ok();
    let root_id = all.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == "root")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ferry_at(dir, &url, Some(&vic), &["token", "revoke", &root_id]).expect(1);
    ferry_at(dir, &url, Some(&vic), &["token", "revoke", id]).ok();
    let r = ferry_at(dir, &url, Some(&second), &["tenant", "list"]).expect(1);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    ferry_at(dir, &url, Some(&hub.root), &["tenant", "list"]).ok();

    // An ID no token has is a 404 naming it, over HTTP and from the CLI.
    let revoke = hub
        .server
        .url("/api/ferry/v1/tokens/tok_000000000000/revoke");
    let body = http("POST", &revoke, Some(&hub.root), &[], None).expect(404);
    assert_eq!(body["error"]["code"], "token_not_found", "{body}");
    assert_eq!(body["id"], "tok_000000000000", "{body}");
    let r = ferry_at(
        dir,
        &url,
        Some(&hub.root),
        &["token", "revoke", "tok_000000000000"],
    );
    let r = r.expect(1);
    assert!(
        r.stderr.contains("no token has the ID `tok_000000000000`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ferry token list"), "{}", r.stderr);
}

/// What schemathesis found in the store contract's bodies (`.ci/schemathesis.sh`):
/// a user with an empty name was added, a token whose ID the store already
/// held was a 500, an empty `source` listed nothing with a 200, and a whole
/// number spelled `3.0` was refused. Each is now a clear answer, and a
/// refusal changes nothing.
#[test]
fn the_store_contract_reads_bodies_as_the_document_describes_them() {
    let hub = hub();
    let url = |p: &str| hub.server.url(&format!("/api/ferry/v1{p}"));
    let post = |p: &str, body: serde_json::Value| {
        crate::common::http_json("POST", &url(p), Some(&hub.root), &body)
    };
    let get = |p: &str| http("GET", &url(p), Some(&hub.root), &[], None);
    let users = || {
        get("/access").expect(200)["users"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = users();
    for name in ["", "Bad Name"] {
        let body = post("/users", serde_json::json!({ "name": name })).expect(400);
        assert_eq!(body["error"]["code"], "bad_name", "{body}");
    }
    assert_eq!(users(), before);

    // A new tenant's keys must be an age key pair: a private key that does
    // not parse, or a public key of another pair, is refused and nothing is
    // created (the private key is never echoed).
    let tenants = || get("/tenants").expect(200).as_array().unwrap().len();
    let before = tenants();
    let mine = ferry::domain::secrets::generate_keypair();
    let other = ferry::domain::secrets::generate_keypair();
    for (identity, recipient, field) in [
        (
            "AGE-SECRET-KEY-1NOTAKEY",
            mine.recipient.as_str(),
            "identity",
        ),
        (
            mine.identity.as_str(),
            other.recipient.as_str(),
            "recipient",
        ),
        (mine.identity.as_str(), "age1nope", "recipient"),
    ] {
        let body = post(
            "/tenants",
            serde_json::json!({"name": "keyless", "recipient": recipient, "identity": identity}),
        )
        .expect(400);
        assert_eq!(body["error"]["code"], "bad_keys", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("field `{field}`")), "{body}");
        assert!(!body.to_string().contains(&mine.identity), "{body}");
    }
    let body = post(
        "/tenants",
        serde_json::json!({"name": "Bad Name", "recipient": mine.recipient, "identity": mine.identity}),
    )
    .expect(400);
    assert_eq!(body["error"]["code"], "bad_name", "{body}");
    assert_eq!(tenants(), before);
    post(
        "/tenants",
        serde_json::json!({"name": "keyed", "recipient": mine.recipient, "identity": mine.identity}),
    )
    .expect(200);
    assert_eq!(tenants(), before + 1);

    let token = serde_json::json!({"hash": "dddddddddddd-x", "user": "root"});
    post("/tokens", token.clone()).expect(200);
    let body = post("/tokens", token).expect(409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tok_dddddddddddd"),
        "{body}"
    );
    let late = serde_json::json!({"hash": "eeeeeeeeeeee-x", "user": "root", "expires_at": "soon"});
    let body = post("/tokens", late).expect(400);
    assert_eq!(body["error"]["code"], "bad_expiry", "{body}");

    let syncs = "/tenants/acme-dev/syncs";
    let body = get(&format!("{syncs}?source=")).expect(400);
    assert_eq!(body["error"]["code"], "no_source", "{body}");
    let record = |revision: serde_json::Value| {
        serde_json::json!({"source_key": "zip:one", "records": [
            {"localId": "tol_a", "originId": "o", "revision": revision, "contentHash": "h"}]})
    };
    let body = post(syncs, record(serde_json::json!(9_007_199_254_740_992u64))).expect(400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("beyond"),
        "{body}"
    );
    post(syncs, record(serde_json::json!(3.0))).expect(200);
    let listed = get(&format!("{syncs}?source=zip:one")).expect(200);
    assert_eq!(listed["records"][0]["revision"], 3, "{listed}");
    assert_eq!(listed["records"].as_array().unwrap().len(), 1, "{listed}");

    // A body that is not an object is refused, though serde would read a
    // struct from an array (schemathesis sent `[]` to the export).
    for body in [
        serde_json::json!([]),
        serde_json::json!(["x"]),
        serde_json::json!(7),
    ] {
        let answer = post("/tenants/acme-dev/export", body).expect(400);
        assert_eq!(answer["error"]["code"], "bad_body", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a JSON object"),
            "{answer}"
        );
    }
    post("/tenants/acme-dev/export", serde_json::json!({})).expect(200);
}

#[test]
fn variables_are_set_listed_and_unset_through_a_remote_server_as_ciphertext_only() {
    let hub = hub();
    hub.env.user("vic", &[("acme-dev", "viewer")]);
    hub.env.user("eve", &[("acme-dev", "editor")]);
    let (vic, eve) = (hub.env.token("vic", None), hub.env.token("eve", None));
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let url = hub.server.base.clone();
    let value = "sk-remote-variable-value-0123456789";
    let set = ["vars", "set", "--tenant", "acme-dev", "CRM_API_KEY"];
    let r = ferry_fed(&client, &url, Some(&vic), &set, Some(value)).expect(1);
    assert!(r.stderr.contains("editor"), "{}", r.stderr);
    let r = ferry_fed(&client, &url, Some(&eve), &set, Some(value)).ok();
    assert!(
        r.stderr.contains("Set CRM_API_KEY in acme-dev"),
        "{}",
        r.stderr
    );
    // A viewer lists names only; the server's own store has it, encrypted.
    let list = ["vars", "list", "--tenant", "acme-dev", "--output", "json"];
    let listed = ferry_at(&client, &url, Some(&vic), &list).ok();
    assert_eq!(listed.json()["set"], serde_json::json!(["CRM_API_KEY"]));
    let local = hub
        .env
        .ferry(&[
            "--as", "root", "vars", "list", "--tenant", "acme-dev", "--output", "json",
        ])
        .ok();
    assert_eq!(local.json()["set"], serde_json::json!(["CRM_API_KEY"]));
    let db = std::fs::read(hub.env.repo.join(".ferry/store.db")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(!db.contains(value) && !hub.server.log().contains(value));
    assert!(!listed.stdout.contains(value) && !listed.stderr.contains(value));
    // The server checks the role itself, and refuses what does not open with the tenant's key.
    let mut as_vic =
        ferry::backend::store::open_with_options(&url, &client, None, Some(&vic)).unwrap();
    let admin = as_vic.tenant_admin_mut().unwrap();
    let e = admin
        .set_variable("acme-dev", "X", "ENC[age,abc]")
        .unwrap_err();
    assert!(e.to_string().contains("needs the editor role"), "{e}");
    let e = admin.unset_variable("acme-dev", "CRM_API_KEY").unwrap_err();
    assert!(e.to_string().contains("needs the editor role"), "{e}");
    let mut as_eve =
        ferry::backend::store::open_with_options(&url, &client, None, Some(&eve)).unwrap();
    let other = ferry::domain::secrets::generate_keypair();
    let foreign = ferry::domain::secrets::encrypt(&other.recipient, b"x").unwrap();
    let admin = as_eve.tenant_admin_mut().unwrap();
    let e = admin.set_variable("acme-dev", "X", &foreign).unwrap_err();
    assert!(e.to_string().contains("cannot decrypt"), "{e}");
    let names = as_eve
        .tenant_admin()
        .unwrap()
        .variable_names("acme-dev")
        .unwrap();
    assert_eq!(names, ["CRM_API_KEY"]);
    // Unset: the editor may, and a second time it was not set.
    let unset = ["vars", "unset", "--tenant", "acme-dev", "CRM_API_KEY"];
    ferry_at(&client, &url, Some(&vic), &unset).expect(1);
    let r = ferry_at(&client, &url, Some(&eve), &unset).ok();
    assert!(r.stderr.contains("Unset CRM_API_KEY"), "{}", r.stderr);
    let r = ferry_at(&client, &url, Some(&eve), &unset).ok();
    assert!(r.stderr.contains("was not set"), "{}", r.stderr);
    let listed = ferry_at(&client, &url, Some(&vic), &list).ok();
    assert_eq!(listed.json()["set"], serde_json::json!([]));
}

#[test]
fn a_tenant_is_deleted_through_a_remote_server_by_an_owner_only() {
    let hub = hub();
    hub.env.user("ada", &[("acme-staging", "admin")]);
    let ada = hub.env.token("ada", None);
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let url = hub.server.base.clone();
    let delete = ["tenant", "delete", "acme-staging", "--yes"];
    let before = hub.revision();
    let r = ferry_at(&client, &url, Some(&ada), &delete).expect(1);
    assert!(r.stderr.contains("owner"), "{}", r.stderr);
    // Past the client's checks, the server refuses too, and a stale check deletes nothing.
    let mut as_ada =
        ferry::backend::store::open_with_options(&url, &client, None, Some(&ada)).unwrap();
    let e = as_ada
        .tenant_admin_mut()
        .unwrap()
        .delete_tenant("acme-staging")
        .unwrap_err();
    assert!(e.to_string().contains("needs the owner role"), "{e}");
    let mut as_root =
        ferry::backend::store::open_with_options(&url, &client, None, Some(&hub.root)).unwrap();
    let revision = as_root.tenant("acme-staging").unwrap().revision;
    let e = as_root
        .tenant_admin_mut()
        .unwrap()
        .delete_checked("acme-staging", revision + 7, false)
        .unwrap_err();
    assert!(
        matches!(e, ferry::backend::store::StoreError::Stale { .. }),
        "{e}"
    );
    assert_eq!(hub.revision(), before);
    let r = hub.as_root(&client, &delete).ok();
    assert!(
        r.stdout.contains("Deleted tenant acme-staging"),
        "{}",
        r.stdout
    );
    let listed = hub
        .env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok();
    let names: Vec<String> = listed.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["acme-dev"]);
}

/// Replace `from` with `to` in `file` under the clone's acme-dev folder.
fn edit_acme(clone: &Path, file: &str, from: &str, to: &str) {
    let path = clone.join("tenants/acme-dev").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The tenant as the server's store holds it.
fn tenant_at(hub: &Hub, tenant: &str) -> serde_json::Value {
    let url = hub.server.url(&format!("/api/ferry/v1/tenants/{tenant}"));
    http("GET", &url, Some(&hub.root), &[], None).expect(200)
}

#[test]
fn a_plan_sends_the_server_only_the_files_it_lacks() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    let apply_ref = ["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"];
    let first = hub.as_root(&client, &apply_ref).ok();
    assert!(first.stderr.contains("sent the server"), "{}", first.stderr);

    // A one-file change, committed: `plan --ref` sends that one file, and the commit.
    edit_acme(
        &client,
        "tools/billing-invoices.yaml",
        "List a customer's invoices",
        "List all of a customer's invoices",
    );
    git_at(&client, &["commit", "-qam", "one tool"]);
    let head = git_at(&client, &["rev-parse", "HEAD"]);
    let plan = [
        "plan",
        "--tenant",
        "acme-dev",
        "--ref",
        "HEAD",
        "--detailed-exitcode",
    ];
    let r = hub.as_root(&client, &plan).expect(2);
    assert!(
        r.stderr
            .contains("sent the server 1 file(s) of 1 resource(s) it lacked"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("billing-invoices"), "{}", r.stdout);
    // Saved, it applies as any plan, and the server records the commit.
    let saved = hub.env.tmp.path().join("one.json");
    let saved = saved.to_str().unwrap();
    let mut out = plan.to_vec();
    out.extend(["--out", saved]);
    hub.as_root(&client, &out).expect(2);
    hub.as_root(&client, &["apply", "--plan", saved, "--yes"])
        .ok();
    assert_eq!(tenant_at(&hub, "acme-dev")["lastCommit"], head.trim());
    let r = hub.as_root(&client, &plan).expect(0);
    assert!(
        r.stderr.contains("sent the server 0 file(s)"),
        "{}",
        r.stderr
    );

    // A folder plan sends the hash of every file, then only the two that differ.
    edit_acme(
        &client,
        "tools/crm-lookup.yaml",
        "description: ",
        "description: Changed. ",
    );
    edit_acme(
        &client,
        "tools/order-status.yaml",
        "description: ",
        "description: Changed. ",
    );
    let r = hub
        .as_root(
            &client,
            &["plan", "--tenant", "acme-dev", "--detailed-exitcode"],
        )
        .expect(2);
    assert!(
        r.stderr
            .contains("sent the server 2 file(s) of 2 resource(s) it lacked"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("crm-lookup") && r.stdout.contains("order-status"),
        "{}",
        r.stdout
    );
    // A broken file is reported from the server's checks, with its file and line.
    edit_acme(
        &client,
        "tools/crm-lookup.yaml",
        "kind: Tool",
        "kind: Tool\nbogus: 1",
    );
    let r = hub
        .as_root(&client, &["plan", "--tenant", "acme-dev"])
        .expect(1);
    assert!(r.stderr.contains("tools/crm-lookup.yaml"), "{}", r.stderr);
}

#[test]
fn an_export_moves_only_the_files_that_changed() {
    let hub = hub();
    let client = clone_of_acme(hub.env.tmp.path(), "client");
    hub.as_root(
        &client,
        &["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"],
    )
    .ok();
    let out = hub.env.tmp.path().join("export");
    let export = [
        "export",
        "--tenant",
        "acme-dev",
        "--out",
        out.to_str().unwrap(),
    ];
    let first = hub.as_root(&client, &export).ok();
    let total = files(&out).len();
    assert!(
        first
            .stderr
            .contains(&format!("received {total} of {total} file(s)")),
        "{}",
        first.stderr
    );
    let again = hub.as_root(&client, &export).ok();
    assert!(
        again.stderr.contains(&format!("received 0 of {total}")),
        "{}",
        again.stderr
    );
    // One resource changes on the server, and one file is removed from the folder.
    edit_acme(
        &client,
        "tools/billing-invoices.yaml",
        "List a customer's invoices",
        "List all of a customer's invoices",
    );
    hub.as_root(&client, &["apply", "--tenant", "acme-dev", "--yes"])
        .ok();
    std::fs::remove_file(out.join("tools/crm-lookup.yaml")).unwrap();
    std::fs::write(out.join("tools/stray.yaml"), "left over").unwrap();
    let third = hub.as_root(&client, &export).ok();
    assert!(
        third.stderr.contains(&format!("received 2 of {total}")),
        "{}",
        third.stderr
    );
    // The folder is exactly what a local export of the server's store writes.
    let local = hub.env.tmp.path().join("local-export");
    hub.env
        .ferry(&[
            "--as",
            "root",
            "export",
            "--tenant",
            "acme-dev",
            "--out",
            local.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(files(&out), files(&local));
}

/// A loopback relay in front of a server that keeps every byte the client
/// sends, one buffer per connection.
struct Relay {
    base: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    fn start(upstream: &str) -> Relay {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut server = TcpStream::connect(&upstream).unwrap();
                let (mut client_back, mut server_back) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_back, &mut client_back);
                    let _ = client_back.shutdown(std::net::Shutdown::Both);
                });
                let slot = {
                    let mut all = kept.lock().unwrap();
                    all.push(Vec::new());
                    all.len() - 1
                };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n @ 1..) = client.read(&mut buf) {
                        kept.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay { base, sent }
    }

    /// Each request sent so far: its method, path and body length.
    fn requests(&self) -> Vec<(String, String, usize)> {
        let mut out = Vec::new();
        for stream in self.sent.lock().unwrap().iter() {
            let mut rest = &stream[..];
            while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&rest[..end]).to_string();
                let mut lines = head.lines();
                let mut first = lines.next().unwrap().split(' ');
                let (method, path) = (first.next().unwrap(), first.next().unwrap());
                let length = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.trim().parse().unwrap());
                let path = path.split('?').next().unwrap().to_string();
                out.push((method.to_string(), path, length));
                rest = &rest[(end + 4 + length).min(rest.len())..];
            }
        }
        out
    }
}

/// Whether the API path `path` is an instance of the document's `template`.
fn is_instance(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Every request the remote store sends carries a body exactly when the
/// API document gives its operation one. A body the server does not read
/// is left on the connection: hyper then closes it after answering, and
/// the client's next request on that pooled connection met a closed socket
/// (`Unexpected EOF` on a token lookup after a revoke, in CI).
#[test]
fn the_remote_store_sends_a_body_only_where_the_api_document_has_one() {
    let properties: [fn(&Fresh); 4] = [
        crate::conformance::tokens_are_listed_and_revoked_once_by_id,
        crate::conformance::variables_are_kept_per_tenant_by_name,
        crate::conformance::deleting_a_tenant_removes_everything_it_holds,
        crate::conformance::publish_changes_pair_each_version_with_the_one_before,
    ];
    for property in properties {
        let inner = remote_fresh();
        let relay = Relay::start(&inner.url);
        property(&Fresh {
            url: relay.base.clone(),
            base: inner.base.clone(),
            token: inner.token.clone(),
            faulty: None,
            _guard: Box::new(()),
        });
        let document = http(
            "GET",
            &format!("{}/openapi.json", inner.url),
            None,
            &[],
            None,
        )
        .json();
        let requests = relay.requests();
        assert!(requests.len() > 5, "{requests:?}");
        for (method, path, length) in requests {
            let operation = document["paths"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(template, _)| is_instance(template, &path))
                .find_map(|(_, ops)| ops.get(method.to_lowercase()))
                .unwrap_or_else(|| panic!("{method} {path} is not in the API document"));
            let documented = operation.get("requestBody").is_some();
            assert_eq!(
                length > 0,
                documented,
                "{method} {path}: a body of {length} bytes"
            );
        }
    }
}

/// The server reads a small body whole, whether or not its handler wants
/// it: a body arriving after a bodiless handler (a token revoke) has
/// answered no longer makes the server drop the kept-alive connection
/// under the client's next request.
#[test]
fn a_late_body_the_handler_ignores_leaves_the_connection_usable() {
    use std::io::{Read, Write};
    let hub = hub();
    let addr = hub.server.base.trim_start_matches("http://").to_string();
    let mut socket = std::net::TcpStream::connect(&addr).unwrap();
    socket.set_nodelay(true).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = |method: &str, path: &str, length: usize| {
        format!(
            "{method} /api/ferry/v1{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
            hub.root
        )
    };
    // One answer off the socket: its head, then as many body bytes as it says.
    let answer = |socket: &mut std::net::TcpStream| -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + length {
                    return String::from_utf8_lossy(&got[..end + 4 + length]).into_owned();
                }
            }
            let n = socket.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed the connection; had: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    for round in 0..3 {
        let revoke = head("POST", "/tokens/tok_000000000000/revoke", 4);
        socket.write_all(revoke.as_bytes()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        socket.write_all(b"null").unwrap();
        let first = answer(&mut socket);
        assert!(first.starts_with("HTTP/1.1 404"), "round {round}: {first}");
        assert!(
            !first.to_lowercase().contains("connection: close"),
            "{first}"
        );
        socket
            .write_all(head("GET", "/whoami", 0).as_bytes())
            .unwrap();
        let second = answer(&mut socket);
        assert!(
            second.starts_with("HTTP/1.1 200"),
            "round {round}: {second}"
        );
        assert!(second.contains("\"root\""), "{second}");
    }
}
