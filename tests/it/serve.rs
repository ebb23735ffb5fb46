//! `ferry serve`: real servers on loopback ports, driven over HTTP (and
//! with the reference documents' own curl commands).

use serde_json::json;

use crate::common::*;

/// The acme repo with acme-dev applied, acme-staging and acme-prod created,
/// `root` as owner and a token bound to acme-dev.
pub fn acme_server_env() -> (TestEnv, String) {
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
    let names: Vec<&str> = t["items"]
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
        steps["items"],
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
            "--yes",
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
    assert_eq!(t["items"].as_array().unwrap().len(), 1);
    // Nothing changed in the target.
    let list = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    let staging = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-staging")
        .unwrap()
        .clone();
    assert_eq!(staging["resources"], 0, "{staging}");
}

/// The agent path of the support bot.
fn bot(server: &Server, rest: &str) -> String {
    server.url(&format!("/api/v2/agents/support-bot{rest}"))
}

#[test]
pub fn document_003_edit_diff_publish_history_rollback() {
    let (env, token) = acme_server_env();
    env.user("vera", &[("acme-dev", "viewer")]);
    let vera = env.token("vera", Some("acme-dev"));
    let server = Server::start(&env, &[]);
    let t = Some(token.as_str());

    // A first publish makes production.
    let first = http_json(
        "POST",
        &bot(&server, "/publish"),
        t,
        &json!({"message": "first"}),
    )
    .expect(200);
    assert_eq!(first["hasChanges"], true);
    // Nothing more to publish: 409 with has_changes false.
    let e = http_json("POST", &bot(&server, "/publish"), t, &json!({})).expect(409);
    assert_eq!(e["hasChanges"], false);
    assert_eq!(e["error"]["code"], "nothing_to_publish");
    let d = http("GET", &bot(&server, "/staging-diff"), t, &[], None).expect(200);
    assert_eq!(d["hasChanges"], false, "{d}");

    // The staging edits of the document.
    http_json(
        "PUT",
        &bot(&server, ""),
        t,
        &json!({"description": "Acme's front door", "model": {"temperature": 0.3}}),
    )
    .expect(200);
    http_json(
        "PUT",
        &bot(&server, "/instructions"),
        t,
        &json!({"instructions": "Be brief.\n"}),
    )
    .expect(200);
    http_json(
        "POST",
        &bot(&server, "/instructions"),
        t,
        &json!({"name": "apology", "text": "Sorry about that."}),
    )
    .expect(200);
    http(
        "DELETE",
        &bot(&server, "/instructions/greeting"),
        t,
        &[],
        None,
    )
    .expect(200);
    http(
        "POST",
        &bot(&server, "/tools/issue-refund/enable"),
        t,
        &[],
        None,
    )
    .expect(200);
    http(
        "DELETE",
        &bot(&server, "/tools/order-status/disable"),
        t,
        &[],
        None,
    )
    .expect(200);
    http_json(
        "PATCH",
        &bot(&server, "/tools/crm-lookup/actions/list-orders"),
        t,
        &json!({"config": {"limit": 5}}),
    )
    .expect(200);
    http(
        "POST",
        &bot(&server, "/tools/crm-lookup/actions/update-contact/disable"),
        t,
        &[],
        None,
    )
    .expect(200);
    http_json(
        "POST",
        &bot(&server, "/corpora"),
        t,
        &json!({"corpora": ["billing-kb"]}),
    )
    .expect(200);
    http("DELETE", &bot(&server, "/corpora/product-kb"), t, &[], None).expect(200);
    http_json(
        "PATCH",
        &bot(&server, "/guardrails"),
        t,
        &json!([{"name": "profanity-filter", "enabled": true}]),
    )
    .expect(200);
    http_json(
        "PUT",
        &bot(&server, "/access"),
        t,
        &json!({"access": "private"}),
    )
    .expect(200);
    http_json(
        "POST",
        &bot(&server, "/annotates"),
        t,
        &json!({"tags": ["support", "beta"]}),
    )
    .expect(200);

    // Bad edits: named field, unknown things, no changes to production.
    let e = http_json(
        "PUT",
        &bot(&server, ""),
        t,
        &json!({"model": {"temperature": "hot"}}),
    )
    .expect(400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{e}"
    );
    // Every problem of an edit at once, as a tree's checks find them.
    let e = http_json(
        "PUT",
        &bot(&server, ""),
        t,
        &json!({"tools": ["no-such-tool"], "subAgents": ["support-bot"]}),
    )
    .expect(400);
    let codes: Vec<&str> = e["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["reference-cycle", "dangling-reference"], "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.tools[0]") && message.contains("spec.subAgents"),
        "{e}"
    );
    http(
        "POST",
        &bot(&server, "/tools/no-such-tool/enable"),
        t,
        &[],
        None,
    )
    .expect(404);
    http(
        "GET",
        &server.url("/api/v2/agents/no-such-bot/staging-diff"),
        t,
        &[],
        None,
    )
    .expect(404);

    // The staging diff over HTTP is the CLI's.
    let d = http("GET", &bot(&server, "/staging-diff"), t, &[], None).expect(200);
    assert_eq!(d["hasChanges"], true);
    let paths: Vec<String> = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["path"].as_str().unwrap().to_string())
        })
        .collect();
    for p in [
        "spec.description",
        "spec.instructions",
        "spec.tools",
        "spec.knowledgeBases",
        "spec.access",
        "spec.tags",
    ] {
        assert!(
            paths.iter().any(|x| x.starts_with(p)),
            "{p} not in {paths:?}"
        );
    }
    let cli = env
        .ferry(&[
            "--as",
            "root",
            "diff",
            "--tenant",
            "acme-dev",
            "--agent",
            "support-bot",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(cli["hasChanges"], d["hasChanges"]);
    assert_eq!(cli["resources"], d["resources"]);

    // A viewer can read but not publish or edit.
    http(
        "GET",
        &bot(&server, "/staging-diff"),
        Some(&vera),
        &[],
        None,
    )
    .expect(200);
    let e = http_json("POST", &bot(&server, "/publish"), Some(&vera), &json!({})).expect(403);
    assert_eq!(e["error"]["code"], "forbidden");
    http_json(
        "PUT",
        &bot(&server, "/access"),
        Some(&vera),
        &json!({"access": "public"}),
    )
    .expect(403);

    // Publish, history, publish diff.
    let p = http_json(
        "POST",
        &bot(&server, "/publish"),
        t,
        &json!({"message": "tighten support-bot"}),
    )
    .expect(200);
    let change = p["changeTrackId"].as_str().unwrap().to_string();
    assert_eq!(p["publishedBy"], "root");
    let h = http("GET", &bot(&server, "/publishes"), t, &[], None).expect(200);
    let list = h["items"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["changeTrackId"], change.as_str());
    assert_eq!(list[0]["message"], "tighten support-bot");
    let cli = env.publish_log("acme-dev", &["--agent", "support-bot"]);
    assert_eq!(cli, h, "the CLI and the API give the same publish history");
    let pd = http(
        "GET",
        &bot(&server, &format!("/publishes/{change}/diff")),
        t,
        &[],
        None,
    )
    .expect(200);
    assert_eq!(pd["preview"], true);
    assert!(!pd["resources"].as_array().unwrap().is_empty(), "{pd}");
    http(
        "GET",
        &bot(&server, "/publishes/ct_nope/diff"),
        t,
        &[],
        None,
    )
    .expect(404);
    let d = http("GET", &bot(&server, "/staging-diff"), t, &[], None).expect(200);
    assert_eq!(d["hasChanges"], false);

    // Rollback takes the publish's changes out of staging; production waits for a publish.
    let r = http_json(
        "PUT",
        &bot(&server, "/rollback"),
        t,
        &json!({"changeTrackId": change}),
    )
    .expect(200);
    assert_eq!(r["written"], true, "{r}");
    let d = http("GET", &bot(&server, "/staging-diff"), t, &[], None).expect(200);
    assert_eq!(d["hasChanges"], true);
    let desc = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["changes"].as_array().unwrap().clone())
        .find(|c| c["path"] == "spec.description")
        .unwrap();
    assert_eq!(desc["production"], "Acme's front door");
    let p = http_json(
        "POST",
        &bot(&server, "/publish"),
        t,
        &json!({"message": "roll back"}),
    )
    .expect(200);
    assert_eq!(p["number"], 3);
    let d = http("GET", &bot(&server, "/staging-diff"), t, &[], None).expect(200);
    assert_eq!(d["hasChanges"], false);
    let a = http("GET", &bot(&server, ""), t, &[], None).expect(200);
    assert_eq!(a["spec"]["access"], "public");
}

#[test]
fn no_endpoint_reveals_another_tenant() {
    let (env, root) = acme_server_env();
    env.user("pam", &[("acme-prod", "owner")]);
    let pam = env.token("pam", Some("acme-prod"));
    let server = Server::start(&env, &[]);
    // The support bot lives in acme-dev; pam's tenant is acme-prod.
    let id = http("GET", &bot(&server, ""), Some(&root), &[], None).expect(200)["id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        format!("/api/v2/agents/{id}"),
        format!("/api/v2/agents/{id}/staging-diff"),
        format!("/api/v2/agents/{id}/publishes"),
    ] {
        let e = http("GET", &server.url(&path), Some(&pam), &[], None).expect(404);
        assert!(!e.to_string().contains("instructions"), "{e}");
    }
    http(
        "POST",
        &server.url(&format!("/backup/export/{id}")),
        Some(&pam),
        &[],
        None,
    )
    .expect(404);
    let list = http("GET", &server.url("/api/v2/agents"), Some(&pam), &[], None).expect(200);
    assert_eq!(list, json!({"items": []}));
    // Nor can pam change it or publish it from her tenant.
    let e = http_json(
        "PUT",
        &server.url(&format!("/api/v2/agents/{id}")),
        Some(&pam),
        &json!({"description": "pwned"}),
    )
    .expect(404);
    assert_eq!(e["error"]["code"], "agent_not_found");
    http_json(
        "POST",
        &server.url(&format!("/api/v2/agents/{id}/publish")),
        Some(&pam),
        &json!({}),
    )
    .expect(404);
    let a = http("GET", &bot(&server, ""), Some(&root), &[], None).expect(200);
    assert_ne!(a["spec"]["description"], "pwned");
    // A token bound to a tenant pam holds no role on.
    let sneaky = env.token("pam", Some("acme-dev"));
    http(
        "GET",
        &server.url("/api/v2/agents"),
        Some(&sneaky),
        &[],
        None,
    )
    .expect(403);
}

/// A second instance: an empty acme-prod and a token bound to it.
pub fn target_env() -> (TestEnv, String) {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some("acme-prod"));
    (env, token)
}

pub fn agent_id(server: &Server, token: &str, name: &str) -> String {
    let list = http("GET", &server.url("/api/v2/agents"), Some(token), &[], None).expect(200);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
pub fn document_002_zip_export_and_import_over_http() {
    let (env, token) = acme_server_env();
    let prod = env.token("root", Some("acme-prod"));
    let server = Server::start(&env, &[]);
    let id = agent_id(&server, &token, "support-bot");

    let tree = http(
        "POST",
        &server.url(&format!("/backup/export/{id}/preview")),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
    let entries = tree["resources"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["resourceType"] == "agent" && e["required"] == true));
    let zip = http(
        "POST",
        &server.url(&format!("/backup/export/{id}")),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(zip.status, 200);
    assert_eq!(&zip.body[..2], b"PK");
    let plain = String::from_utf8_lossy(&zip.body).to_string();
    assert!(
        !plain.contains("ENC[age"),
        "no encrypted value leaves the tenant"
    );

    // The document's curl commands, into acme-prod of the same server.
    std::fs::write(env.tmp.path().join("agent-export.zip"), &zip.body).unwrap();
    let script = r#"
cd "$DIR"
curl -sS -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/zip" \
  --data-binary @agent-export.zip "$BASE/backup/import/preview"
echo
curl -sS -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/zip" \
  --data-binary @agent-export.zip "$BASE/backup/import?strategy=create"
echo
"#;
    let out = sh(
        script,
        &[
            ("BASE", &server.base),
            ("TOKEN", &prod),
            ("DIR", env.tmp.path().to_str().unwrap()),
        ],
    );
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let preview: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(
        preview["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "CREATE"),
        "{preview}"
    );
    let result: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(
        !result["created"].as_array().unwrap().is_empty(),
        "{result}"
    );
    let local = agent_id(&server, &prod, "support-bot");

    // Upgrade onto the imported agent: nothing differs, all SKIP.
    let p = http(
        "POST",
        &server.url(&format!("/backup/import/preview?targetAgentId={local}")),
        Some(&prod),
        &[],
        Some(("application/zip", &zip.body)),
    )
    .expect(200);
    assert!(
        p["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "SKIP"),
        "{p}"
    );

    // Bad input: not a ZIP, wrong type, empty selection, unknown strategy, a viewer importing.
    let e = http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        Some(&prod),
        &[],
        Some(("application/zip", b"not a zip")),
    )
    .expect(400);
    assert_eq!(e["error"]["code"], "bad_archive");
    http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        Some(&prod),
        &[],
        Some(("text/plain", &zip.body)),
    )
    .expect(415);
    // Without a token, the caller is refused before the body is looked at.
    http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        None,
        &[],
        Some(("text/plain", &zip.body)),
    )
    .expect(401);
    http(
        "POST",
        &server.url("/backup/import?strategy=create&selectedResources="),
        Some(&prod),
        &[],
        Some(("application/zip", &zip.body)),
    )
    .expect(400);
    http(
        "POST",
        &server.url("/backup/import?strategy=sideways"),
        Some(&prod),
        &[],
        Some(("application/zip", &zip.body)),
    )
    .expect(400);
    env.user("vic", &[("acme-prod", "viewer")]);
    let vic = env.token("vic", Some("acme-prod"));
    http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        Some(&vic),
        &[],
        Some(("application/zip", &zip.body)),
    )
    .expect(403);
    // An agent version that was never published.
    let e = http(
        "POST",
        &server.url(&format!("/backup/export/{id}?agentVersion=9")),
        Some(&token),
        &[],
        None,
    )
    .expect(404);
    assert_eq!(e["error"]["code"], "version_not_found");

    // agentVersion picks a published version; without it, staging goes.
    http_json(
        "POST",
        &server.url(&format!("/api/v2/agents/{id}/publish")),
        Some(&token),
        &json!({}),
    )
    .expect(200);
    http_json(
        "PUT",
        &server.url(&format!("/api/v2/agents/{id}")),
        Some(&token),
        &json!({"description": "staged, not published"}),
    )
    .expect(200);
    let agent_yaml = |q: &str| -> String {
        let z = http(
            "POST",
            &server.url(&format!("/backup/export/{id}{q}")),
            Some(&token),
            &[],
            None,
        );
        assert_eq!(z.status, 200);
        zip_entry(&z.body, "agents/support-bot.yaml")
    };
    assert!(agent_yaml("").contains("staged, not published"));
    let v1 = agent_yaml("?agentVersion=1");
    assert!(
        !v1.contains("staged, not published") && v1.contains("Front-line assistant"),
        "{v1}"
    );
}

/// Write a server config allowing `origins` as sources.
pub fn sync_config(env: &TestEnv, origins: &[&str]) -> String {
    let list: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
    let path = env.tmp.path().join("server.toml");
    std::fs::write(
        &path,
        format!("[sync]\nallowed_sources = [{}]\n", list.join(", ")),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn document_002_live_sync_between_two_servers() {
    let (src_env, src_token) = acme_server_env();
    let source = Server::start(&src_env, &[]);
    let (dst_env, dst_token) = target_env();
    // Without allow-listing, the loopback http source is refused, naming the setting.
    let strict = Server::start(&dst_env, &[]);
    let q = format!("/backup/import/sync/agents?sourceUrl={}", source.base);
    let e = http("GET", &strict.url(&q), Some(&dst_token), &[], None).expect(400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("require_https"),
        "{e}"
    );
    drop(strict);

    let config = sync_config(&dst_env, &[&source.base]);
    let target = Server::start(&dst_env, &["--config", &config]);
    let id = agent_id(&source, &src_token, "support-bot");
    http_json(
        "POST",
        &source.url(&format!("/api/v2/agents/{id}/publish")),
        Some(&src_token),
        &json!({}),
    )
    .expect(200);

    // The document's sequence with curl: discover, preview, execute.
    let script = r#"
curl -sS -X GET "$BASE/backup/import/sync/agents?sourceUrl=$SRC" \
  -H "Authorization: Bearer $TOKEN" -H "X-Source-Authorization: Bearer $SRC_TOKEN"
echo
curl -sS -X POST "$BASE/backup/import/sync/preview?sourceUrl=$SRC&sourceAgentId=$AGENT&sourceAgentVersion=1" \
  -H "Authorization: Bearer $TOKEN" -H "X-Source-Authorization: Bearer $SRC_TOKEN"
echo
curl -sS -X POST "$BASE/backup/import/sync?sourceUrl=$SRC&sourceAgentId=$AGENT&sourceAgentVersion=1" \
  -H "Authorization: Bearer $TOKEN" -H "X-Source-Authorization: Bearer $SRC_TOKEN"
echo
"#;
    let vars = [
        ("BASE", target.base.as_str()),
        ("SRC", source.base.as_str()),
        ("TOKEN", dst_token.as_str()),
        ("SRC_TOKEN", src_token.as_str()),
        ("AGENT", id.as_str()),
    ];
    let out = sh(script, &vars);
    let v: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        v[0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "support-bot"),
        "{}",
        v[0]
    );
    assert!(
        v[1]["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", v[1]))
            .iter()
            .any(|r| r["resourceType"] == "agent" && r["action"] == "CREATE"),
        "{}",
        v[1]
    );
    assert!(!v[2]["created"].as_array().unwrap().is_empty(), "{}", v[2]);
    let local = agent_id(&target, &dst_token, "support-bot");

    // A second run changes nothing; the origin leads to the same local agent.
    let again = sh(script, &vars);
    let last: serde_json::Value =
        serde_json::from_str(again.lines().rfind(|l| !l.trim().is_empty()).unwrap()).unwrap();
    assert!(last["created"].as_array().unwrap().is_empty(), "{last}");
    assert!(last["updated"].as_array().unwrap().is_empty(), "{last}");
    assert_eq!(agent_id(&target, &dst_token, "support-bot"), local);

    // A change at the source arrives as an UPDATE of the same local agent.
    http_json(
        "PUT",
        &source.url(&format!("/api/v2/agents/{id}")),
        Some(&src_token),
        &json!({"description": "changed at the source"}),
    )
    .expect(200);
    let sync = |body: serde_json::Value, path: &str| {
        let bytes = serde_json::to_vec(&body).unwrap();
        http(
            "POST",
            &target.url(&format!("{path}?sourceUrl={}", source.base)),
            Some(&dst_token),
            &[("X-Source-Authorization", &format!("Bearer {src_token}"))],
            Some(("application/json", &bytes)),
        )
    };
    let pb = sync(
        json!([{"sourceAgentId": id, "targetAgentId": local}]),
        "/backup/import/sync/preview/batch",
    )
    .expect(200);
    assert!(
        pb[0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resourceType"] == "agent" && r["action"] == "UPDATE"),
        "{pb}"
    );
    // Batch: one good mapping, one bad; 207, and the good one lands.
    let b = sync(
        json!([
            {"sourceAgentId": id, "sourceAgentVersion": null, "targetAgentId": local, "selectedResources": null, "workflowOrder": null},
            {"sourceAgentId": "agt_missing", "sourceAgentVersion": 1, "targetAgentId": null, "selectedResources": null, "workflowOrder": null}
        ]),
        "/backup/import/sync/batch",
    );
    let items = b.expect(207);
    assert_eq!(items[0]["status"], "ok", "{items}");
    assert_eq!(items[1]["status"], "failed", "{items}");
    let a = http(
        "GET",
        &target.url(&format!("/api/v2/agents/{local}")),
        Some(&dst_token),
        &[],
        None,
    )
    .expect(200);
    assert_eq!(a["spec"]["description"], "changed at the source");

    // Without the source's token, the source refuses and the target says so.
    let e = http(
        "GET",
        &target.url(&format!(
            "/backup/import/sync/agents?sourceUrl={}",
            source.base
        )),
        Some(&dst_token),
        &[],
        None,
    );
    assert_eq!(e.status, 502, "{}", String::from_utf8_lossy(&e.body));
    // No token at the target: 401 before anything leaves.
    http(
        "GET",
        &target.url(&format!(
            "/backup/import/sync/agents?sourceUrl={}",
            source.base
        )),
        None,
        &[],
        None,
    )
    .expect(401);
    // Nothing of the source token reached either log.
    assert!(!target.log().contains(&src_token) && !source.log().contains(&src_token));
}

#[test]
fn ssrf_refusals_name_the_setting() {
    let (env, token) = target_env();
    let urls = [
        ("http://example.com", "require_https"),
        ("https://127.0.0.1", "allow_private_sources"),
        ("https://10.0.0.1", "allow_private_sources"),
        ("https://169.254.169.254", "allow_private_sources"),
        ("https://[::1]", "allow_private_sources"),
        ("https://100.64.0.1", "allow_private_sources"),
        ("https://localhost:9", "allow_private_sources"),
    ];
    // Inside a network namespace with only loopback when this machine allows one,
    // so that a refusal can never reach a real address.
    let isolated = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let bin = assert_cmd::cargo::cargo_bin("ferry");
    let mut script = String::from(
        r#"
set -u
if [ "$ISOLATED" = 1 ]; then ip link set lo up; fi
cd "$REPO"
"$FERRY" serve --addr 127.0.0.1:0 2> "$LOG" &
pid=$!
for i in $(seq 1 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$LOG" | head -1)
"#,
    );
    for (u, _) in &urls {
        script.push_str(&format!(
            "curl -sS -G \"$base/backup/import/sync/agents\" --data-urlencode 'sourceUrl={u}' -H \"Authorization: Bearer $TOKEN\" -w ' %{{http_code}}\\n'\n"
        ));
    }
    script.push_str("kill $pid; wait $pid || true\n");
    let mut c = if isolated {
        let mut c = std::process::Command::new("unshare");
        c.args(["-n", "bash", "-c", &script]);
        c
    } else {
        let mut c = std::process::Command::new("bash");
        c.args(["-c", &script]);
        c
    };
    let log = env.tmp.path().join("serve.log");
    c.env("ISOLATED", if isolated { "1" } else { "0" })
        .env("REPO", &env.repo)
        .env("FERRY", &bin)
        .env("LOG", &log)
        .env("TOKEN", &token)
        .env("NO_COLOR", "1");
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        urls.len(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for ((u, setting), line) in urls.iter().zip(&lines) {
        let (body, status) = line.rsplit_once(' ').unwrap();
        assert_eq!(status, "400", "{u}: {line}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(setting), "{u}: {msg}");
    }
}

#[test]
fn ferry_sync_cli_reads_a_live_source_into_the_local_store() {
    let (src_env, src_token) = acme_server_env();
    let source = Server::start(&src_env, &[]);
    let (dst_env, _) = target_env();
    let id = agent_id(&source, &src_token, "support-bot");

    // Refused by default (http, loopback), naming the setting; nothing written.
    // The target store has users, so the sync acts as one with the role (root).
    let r = dst_env
        .ferry(&[
            "--as",
            "root",
            "sync",
            "--tenant",
            "acme-prod",
            "--source-url",
            &source.base,
            "--source-token",
            &src_token,
            "--agent",
            &id,
        ])
        .expect(1);
    assert!(r.stderr.contains("require_https"), "{}", r.stderr);
    assert!(!r.stderr.contains(&src_token));

    let config = sync_config(&dst_env, &[&source.base]);
    let base = [
        "--as",
        "root",
        "sync",
        "--tenant",
        "acme-prod",
        "--source-url",
        &source.base,
        "--config",
        &config,
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--output", "json"]);
        dst_env.ferry(&a)
    };
    // The token can come from the environment too; without one the source says 401.
    let r = with(&[]).expect(1);
    assert!(r.stdout.contains("401"), "{}", r.stdout);
    let list = with(&["--source-token", &src_token]).ok().json();
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == id.as_str()));
    // In text, one line per agent: its ID and name.
    let mut text: Vec<&str> = base.to_vec();
    text.extend_from_slice(&["--source-token", &src_token]);
    let listed = dst_env.ferry(&text).ok().stdout;
    assert!(
        listed
            .lines()
            .any(|l| l.contains(id.as_str()) && l.contains("support-bot")),
        "{listed}"
    );
    let p = with(&["--source-token", &src_token, "--agent", &id, "--preview"])
        .ok()
        .json();
    assert!(
        p["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["action"] == "CREATE"),
        "{p}"
    );
    let tenants = dst_env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        tenants["items"][0]["resources"], 0,
        "a preview writes nothing"
    );
    let done = with(&["--source-token", &src_token, "--agent", &id])
        .ok()
        .json();
    assert!(!done["created"].as_array().unwrap().is_empty(), "{done}");
    let again = with(&["--source-token", &src_token, "--agent", &id])
        .ok()
        .json();
    assert!(
        again["created"].as_array().unwrap().is_empty()
            && again["updated"].as_array().unwrap().is_empty(),
        "{again}"
    );
    // What landed is the agent the source exported, with its tools.
    dst_env
        .ferry(&["--as", "root", "export", "--tenant", "acme-prod"])
        .ok();
    assert!(dst_env
        .path("tenants/acme-prod/agents/support-bot.yaml")
        .exists());
    assert!(dst_env
        .path("tenants/acme-prod/tools/crm-lookup.yaml")
        .exists());
    let r = with(&[
        "--source-token",
        &src_token,
        "--agent",
        &id,
        "--selected",
        "",
    ])
    .expect(1);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty"),
        "{}",
        r.stdout
    );
}

#[test]
fn oversized_bodies_and_archive_bombs_are_413_and_bad_configs_are_refused() {
    let (env, token) = target_env();
    let server = Server::start(&env, &[]);
    // An archive that expands far beyond its size.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("documents/bomb.txt", opts).unwrap();
    std::io::Write::write_all(&mut w, &vec![0u8; 48 << 20]).unwrap();
    let bomb = w.finish().unwrap().into_inner();
    let e = http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        Some(&token),
        &[],
        Some(("application/zip", &bomb)),
    )
    .expect(413);
    assert_eq!(e["error"]["code"], "archive_too_large");
    // A body over the server's limit.
    let big = vec![b'P'; ferry::server::MAX_BODY_BYTES + 1];
    let e = http(
        "POST",
        &server.url("/backup/import?strategy=create"),
        Some(&token),
        &[],
        Some(("application/zip", &big)),
    )
    .expect(413);
    assert_eq!(e["error"]["code"], "too_large");
    let tenants = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(tenants["items"][0]["resources"], 0);

    // A configuration with an unknown key, or an allowed source that is not an origin.
    env.write("bad.toml", "[sync]\nrequire_http = false\n");
    let r = env
        .ferry(&["serve", "--addr", "127.0.0.1:0", "--config", "bad.toml"])
        .expect(1);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("require_http"),
        "{}",
        r.stderr
    );
    env.write(
        "bad2.toml",
        "[sync]\nallowed_sources = [\"https://ok.example/path\"]\n",
    );
    let r = env
        .ferry(&["serve", "--addr", "127.0.0.1:0", "--config", "bad2.toml"])
        .expect(1);
    assert!(r.stderr.contains("allowed_sources"), "{}", r.stderr);
    // An address that cannot be bound.
    let r = env.ferry(&["serve", "--addr", "256.0.0.1:1"]).expect(1);
    assert!(r.stderr.contains("cannot listen"), "{}", r.stderr);
}
