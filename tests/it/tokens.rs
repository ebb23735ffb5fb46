//! API tokens with a lifecycle: `ferry token create --expires`, `token list`
//! (IDs, never a token), `token revoke`, the server refusing revoked and
//! expired tokens with 401, last use recorded, and an old store migrated.

use crate::common::*;
use crate::serve::acme_server_env;

/// The rows of `ferry token list --output json`, acting as `user`.
fn listed(env: &TestEnv, user: &str) -> Vec<serde_json::Value> {
    let run = env
        .ferry(&["--as", user, "token", "list", "--output", "json"])
        .ok();
    run.json()["items"].as_array().unwrap().clone()
}

/// The ID `token create` reported on stderr for a token.
fn created_id(run: &Run) -> String {
    let at = run.stderr.find("tok_").expect("an ID on stderr");
    run.stderr[at..at + 16].to_string()
}

#[test]
fn tokens_are_listed_without_secrets_revoked_and_refused_when_revoked_or_expired() {
    let (env, root_token) = acme_server_env();
    env.user("vic", &[("acme-dev", "viewer")]);
    let made = env
        .ferry(&[
            "--as",
            "vic",
            "token",
            "create",
            "--user",
            "vic",
            "--tenant",
            "acme-dev",
            "--expires",
            "30d",
        ])
        .ok();
    let vic_token = made.stdout.trim().to_string();
    assert!(vic_token.starts_with("fy_"), "{}", made.stdout);
    assert!(made.stderr.contains("expires 20"), "{}", made.stderr);
    let vic_id = created_id(&made);

    // The list: ID, user, tenant, creation, last use, expiry; never a token.
    let text = env.ferry(&["--as", "root", "token", "list"]).ok();
    for header in [
        "ID",
        "USER",
        "TENANT",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ] {
        assert!(text.stdout.contains(header), "{}", text.stdout);
    }
    assert!(text.stdout.contains(&vic_id), "{}", text.stdout);
    let rows = listed(&env, "root");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let everything = format!("{}{}{rows:?}", text.stdout, text.stderr);
    for secret in [&root_token, &vic_token] {
        assert!(!everything.contains(secret.as_str()), "a token was listed");
        assert!(
            !everything.contains(&secret[3..15]),
            "part of a token was listed"
        );
    }
    let vic_row = rows.iter().find(|r| r["id"] == vic_id.as_str()).unwrap();
    assert_eq!(vic_row["user"], "vic");
    assert_eq!(vic_row["tenant"], "acme-dev");
    assert_eq!(vic_row["status"], "active");
    assert!(vic_row["expiresAt"].as_str().unwrap() > vic_row["createdAt"].as_str().unwrap());
    assert!(vic_row["lastUsedAt"].is_null());
    // vic sees only their own token.
    let mine: Vec<_> = listed(&env, "vic")
        .into_iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(mine, vec![serde_json::json!(vic_id)]);

    let server = Server::start(&env, &[]);
    let agents = server.url("/api/v2/agents");
    http("GET", &agents, Some(&vic_token), &[], None).expect(200);
    http("GET", &agents, Some(&vic_token), &[], None).expect(200);
    // The use is written beside the answer, so it lands just after it.
    let mut used = listed(&env, "vic");
    for _ in 0..50 {
        if used[0]["lastUsedAt"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        used = listed(&env, "vic");
    }
    assert!(used[0]["lastUsedAt"].is_string(), "{used:?}");

    // vic may not revoke root's token; nothing changes.
    let root_id = rows.iter().find(|r| r["user"] == "root").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = env
        .ferry(&["--as", "vic", "token", "revoke", &root_id])
        .expect(1);
    assert!(
        refused.stderr.contains("needs the owner role"),
        "{}",
        refused.stderr
    );
    http("GET", &agents, Some(&root_token), &[], None).expect(200);

    // Revoked: the next request is a 401 naming the token's ID, and the list says so.
    let revoked = env.ferry(&["--as", "vic", "token", "revoke", &vic_id]).ok();
    assert!(
        revoked.stdout.contains(&format!("Revoked token {vic_id}")),
        "{}",
        revoked.stdout
    );
    let body = http("GET", &agents, Some(&vic_token), &[], None).expect(401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    assert_eq!(listed(&env, "vic")[0]["status"], "revoked");
    let unknown = env
        .ferry(&["--as", "root", "token", "revoke", "tok_000000000000"])
        .expect(1);
    assert!(
        unknown.stderr.contains("ferry token list"),
        "{}",
        unknown.stderr
    );

    // Expired: a token whose expiry has passed is a 401 too.
    let expired = "fy_expired_token_for_the_test";
    let mut store = env.open_store();
    store
        .add_token(
            &ferry::service::access::token_hash(expired),
            "root",
            Some("acme-dev"),
            Some("2001-01-01T00:00:00Z"),
        )
        .unwrap();
    drop(store);
    let body = http("GET", &agents, Some(expired), &[], None).expect(401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at 2001-01-01"),
        "{body}"
    );
    let status_of = |id: &str| -> String {
        let rows = listed(&env, "root");
        let row = rows.iter().find(|r| r["id"] == id).unwrap();
        row["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status_of(&root_id), "active");
    assert_eq!(status_of(&vic_id), "revoked");
    let expired_id = format!("tok_{}", &ferry::service::access::token_hash(expired)[..12]);
    assert_eq!(status_of(&expired_id), "expired");
    // The server's log never holds a token.
    let log = server.log();
    assert!(!log.contains(&vic_token) && !log.contains(&root_token) && !log.contains(expired));
}

/// `ferry --as root token create --user root --expires LIFETIME`.
fn create_expiring(env: &TestEnv, lifetime: &str) -> Run {
    env.ferry(&[
        "--as",
        "root",
        "token",
        "create",
        "--user",
        "root",
        "--expires",
        lifetime,
    ])
}

#[test]
fn a_bad_lifetime_is_refused_and_makes_no_token() {
    let env = TestEnv::acme();
    env.user("root", &[]);
    for bad in ["30", "30 days", "0d", "1y", "99999d"] {
        let run = create_expiring(&env, bad).expect(1);
        assert!(
            run.stderr.contains("not a token lifetime"),
            "{bad}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("`30d`"), "{}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "{}", run.stdout);
    }
    assert!(listed(&env, "root").is_empty());
    let run = create_expiring(&env, "12h").ok();
    assert!(run.stderr.contains("expires 20"), "{}", run.stderr);
    assert_eq!(listed(&env, "root").len(), 1);
}

#[test]
fn a_store_of_schema_one_gets_token_ids_and_its_tokens_keep_working() {
    let (env, token) = acme_server_env();
    if env.store.is_some() {
        return; // the SQLite file is what this test downgrades
    }
    let db = env.repo.join(".ferry/store.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP INDEX tokens_by_id;
             ALTER TABLE tokens DROP COLUMN id;
             ALTER TABLE tokens DROP COLUMN expires_at;
             ALTER TABLE tokens DROP COLUMN last_used_at;
             ALTER TABLE tokens DROP COLUMN revoked_at;
             ALTER TABLE resources DROP COLUMN created_by;
             ALTER TABLE resources DROP COLUMN updated_by;
             DROP TABLE drift_journal;
             ALTER TABLE tenants DROP COLUMN resource_count;
             UPDATE meta SET value = '1' WHERE key = 'schema';",
        )
        .unwrap();
    }
    let status = env.ferry(&["store", "migrate"]).ok();
    assert!(
        status.stdout.contains("from version 1 to 5"),
        "{}",
        status.stdout
    );
    let rows = listed(&env, "root");
    let hash = ferry::service::access::token_hash(&token);
    assert_eq!(rows[0]["id"], format!("tok_{}", &hash[..12]));
    let server = Server::start(&env, &[]);
    let agents = server.url("/api/v2/agents");
    http("GET", &agents, Some(&token), &[], None).expect(200);
    // Drafts written before the store kept their authors have none, and still their last change.
    let bot = http(
        "GET",
        &format!("{agents}/support-bot"),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
    assert_eq!(bot["createdBy"], serde_json::Value::Null, "{bot}");
    assert_eq!(bot["draftRevision"], 1, "{bot}");
    assert!(bot["lastChangedAt"].is_string(), "{bot}");
}
