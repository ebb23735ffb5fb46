//! `ferry serve`: real servers on loopback ports, driven over HTTP (and
//! with the reference documents' own curl commands).

use serde_json::json;

use crate::common::*;

/// The acme repo with acme-dev applied, acme-staging and acme-prod created,
/// `root` as owner and a token bound to acme-dev.
fn acme_server_env() -> (TestEnv, String) {
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    for t in ["acme-staging", "acme-prod"] {
        env.ferry(&["tenant", "create", t]).ok();
    }
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some("acme-dev"));
    (env, token)
}

/// Run a shell script (the documents' curl commands) with `vars` set.
fn sh(script: &str, vars: &[(&str, &str)]) -> String {
    let mut c = std::process::Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script]);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "script failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn health_openapi_errors_and_tokens() {
    let (env, token) = acme_server_env();
    assert!(token.starts_with("fy_") && token.len() > 40, "{token}");
    let mut server = Server::start(&env, &[]);

    let h = http("GET", &server.url("/health"), None, &[], None).expect(200);
    assert_eq!(h["status"], "ok");

    // Every route of the table is in the document, and the document has nothing else.
    let doc = http("GET", &server.url("/openapi.json"), None, &[], None).expect(200);
    let mut described = 0;
    for r in ferry::server::openapi::ROUTES {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is not in /openapi.json",
            r.method,
            r.path
        );
        described += 1;
    }
    let in_doc: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(in_doc, described);

    // No token, a bad token: 401 in the error shape.
    let e = http("GET", &server.url("/api/tenants"), None, &[], None).expect(401);
    assert_eq!(e["error"]["code"], "unauthorized");
    assert!(e["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("token create"));
    http(
        "GET",
        &server.url("/api/tenants"),
        Some("fy_nope"),
        &[],
        None,
    )
    .expect(401);
    // An unknown route is a 404 in the same shape.
    let e = http("GET", &server.url("/nowhere"), Some(&token), &[], None).expect(404);
    assert_eq!(e["error"]["code"], "no_route");

    let t = http("GET", &server.url("/api/tenants"), Some(&token), &[], None).expect(200);
    let names: Vec<&str> = t["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-dev", "acme-prod", "acme-staging"]);

    // The store keeps only the hash; the log never holds the token.
    let db = std::fs::read(env.path(".ferry/store.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&token));
    assert_eq!(server.stop(), Some(0), "graceful shutdown exits 0");
    let log = server.log();
    assert!(!log.contains(&token), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 6, "{log}");
    assert!(lines
        .iter()
        .any(|l| l["path"] == "/api/tenants" && l["status"] == 401));
}

#[test]
fn token_create_prints_only_the_token_and_needs_a_known_user() {
    let (env, _) = acme_server_env();
    let r = env
        .ferry(&["--as", "root", "token", "create", "--user", "root"])
        .ok();
    assert_eq!(r.stdout.lines().count(), 1);
    let r = env
        .ferry(&["--as", "root", "token", "create", "--user", "ghost"])
        .expect(1);
    assert!(r.stderr.contains("`ghost` does not exist"), "{}", r.stderr);
    let r = env
        .ferry(&[
            "--as", "root", "token", "create", "--user", "root", "--tenant", "nope",
        ])
        .expect(1);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    env.user("vera", &[("acme-dev", "viewer")]);
    let r = env
        .ferry(&["--as", "vera", "token", "create", "--user", "root"])
        .expect(1);
    assert!(r.stderr.contains("needs a store owner"), "{}", r.stderr);
}

#[test]
fn document_000_full_environment_promotion_loop() {
    let (env, token) = acme_server_env();
    let server = Server::start(&env, &[]);
    let steps = http(
        "GET",
        &server.url("/api/tenant/sync/steps"),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
    assert_eq!(
        steps["steps"],
        json!([
            "documents",
            "connections",
            "knowledgeBases",
            "tools",
            "workflows",
            "agents",
            "evaluations"
        ])
    );

    // The document's own loop, with only host and token changed.
    let script = r#"
for step in documents connections knowledgeBases tools workflows agents evaluations; do
  curl -sS -X POST "$BASE/api/tenant/sync/acme-staging/$step" \
    -H "Authorization: Bearer $TOKEN"
  echo
done
"#;
    let run = |script: &str| -> Vec<serde_json::Value> {
        sh(script, &[("BASE", &server.base), ("TOKEN", &token)])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let first = run(script);
    assert_eq!(first.len(), 7);
    let created: u64 = first
        .iter()
        .map(|r| {
            r["summary"]["create"]
                .as_u64()
                .unwrap_or_else(|| panic!("{r}"))
        })
        .sum();
    assert!(created > 0, "{first:?}");
    // A second run changes nothing.
    let second = run(script);
    for r in &second {
        assert_eq!(r["summary"]["create"], 0, "{r}");
        assert_eq!(r["summary"]["update"], 0, "{r}");
        assert_eq!(r["applied"], false, "{r}");
    }
    // The result is the CLI's: a promote to the same tenant plans nothing.
    let plan = env
        .ferry(&[
            "--as",
            "root",
            "promote",
            "--from",
            "acme-dev",
            "--to",
            "acme-staging",
            "--dry-run",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(plan["summary"]["create"], 0);
    assert_eq!(plan["summary"]["update"], 0);

    // Unknown step, steps out of order.
    let e = http(
        "POST",
        &server.url("/api/tenant/sync/acme-prod/gadgets"),
        Some(&token),
        &[],
        None,
    )
    .expect(400);
    assert_eq!(e["error"]["code"], "unknown_step");
    let e = http(
        "POST",
        &server.url("/api/tenant/sync/acme-prod/agents"),
        Some(&token),
        &[],
        None,
    )
    .expect(409);
    assert_eq!(e["error"]["code"], "missing_dependencies");
    let e = http(
        "POST",
        &server.url("/api/tenant/sync/acme-nowhere/tools"),
        Some(&token),
        &[],
        None,
    )
    .expect(404);
    assert_eq!(e["error"]["code"], "tenant_not_found");
}

#[test]
fn sync_needs_admin_on_both_tenants() {
    let (env, _root) = acme_server_env();
    env.user("ada", &[("acme-dev", "admin")]);
    env.user("ed", &[("acme-dev", "editor"), ("acme-staging", "admin")]);
    let ada = env.token("ada", Some("acme-dev"));
    let ed = env.token("ed", Some("acme-dev"));
    let server = Server::start(&env, &[]);
    let e = http(
        "POST",
        &server.url("/api/tenant/sync/acme-staging/documents"),
        Some(&ada),
        &[],
        None,
    )
    .expect(403);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme-staging"),
        "{e}"
    );
    http(
        "POST",
        &server.url("/api/tenant/sync/acme-staging/documents"),
        Some(&ed),
        &[],
        None,
    )
    .expect(403);
    // A tenant with no grant is not listed.
    let t = http("GET", &server.url("/api/tenants"), Some(&ada), &[], None).expect(200);
    assert_eq!(t["tenants"].as_array().unwrap().len(), 1);
    // Nothing changed in the target.
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    let staging = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-staging")
        .unwrap()
        .clone();
    assert_eq!(staging["resources"], 0, "{staging}");
}
