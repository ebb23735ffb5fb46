//! The authorisation matrix (issue 14, "Keep it so"): every route of the
//! route table (`ferry::server::openapi::ROUTES`) × {no token, revoked
//! token, viewer, editor, admin, owner, another tenant's owner, store owner}, each
//! answering the status [`NEEDS`] documents for it. A route added to the
//! table without a row here fails the test; a refusal changes nothing in
//! the store.

use std::collections::BTreeSet;

use ferry::backend::store::image::StoreImage;
use ferry::server::openapi::ROUTES;

use crate::common::*;
use crate::serve::acme_server_env;

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Anyone, with or without a token: always 200.
    Public,
    /// A token that lets its bearer in (any user): 401 without one.
    AnyToken,
    /// At least this role on the token's tenant (and, for a tenant sync, on the target).
    Role(&'static str),
    /// A store owner.
    StoreOwner,
}

use Needs::*;

/// The documented requirement of every route, by method and path (`docs/server.md`).
const NEEDS: &[(&str, &str, Needs)] = &[
    ("GET", "/health", Public),
    ("GET", "/openapi.json", Public),
    ("GET", "/api/tenants", AnyToken),
    ("GET", "/api/tenant/sync/steps", Public),
    (
        "POST",
        "/api/tenant/sync/{targetTenantId}/{step}",
        Role("admin"),
    ),
    ("GET", "/backup/import/sync/agents", Role("editor")),
    ("POST", "/backup/import/sync/preview", Role("editor")),
    ("POST", "/backup/import/sync/preview/batch", Role("editor")),
    ("POST", "/backup/import/sync", Role("editor")),
    ("POST", "/backup/import/sync/batch", Role("editor")),
    ("POST", "/backup/import/preview", Role("editor")),
    ("POST", "/backup/import", Role("editor")),
    ("POST", "/backup/export/{agentId}/preview", Role("viewer")),
    ("POST", "/backup/export/{agentId}", Role("viewer")),
    ("GET", "/api/v2/agents", Role("viewer")),
    ("GET", "/api/v2/agents/{agent_id}", Role("viewer")),
    ("PUT", "/api/v2/agents/{agent_id}", Role("editor")),
    (
        "POST",
        "/api/v2/agents/{agent_id}/instructions",
        Role("editor"),
    ),
    (
        "PUT",
        "/api/v2/agents/{agent_id}/instructions",
        Role("editor"),
    ),
    (
        "DELETE",
        "/api/v2/agents/{agent_id}/instructions/{instruction_id}",
        Role("editor"),
    ),
    ("POST", "/api/v2/agents/{agent_id}/corpora", Role("editor")),
    (
        "DELETE",
        "/api/v2/agents/{agent_id}/corpora",
        Role("editor"),
    ),
    (
        "POST",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        Role("editor"),
    ),
    (
        "PUT",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        Role("editor"),
    ),
    (
        "DELETE",
        "/api/v2/agents/{agent_id}/corpora/{corpus_id}",
        Role("editor"),
    ),
    (
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/enable",
        Role("editor"),
    ),
    (
        "DELETE",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/disable",
        Role("editor"),
    ),
    (
        "PATCH",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}",
        Role("editor"),
    ),
    (
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/enable",
        Role("editor"),
    ),
    (
        "POST",
        "/api/v2/agents/{agent_id}/tools/{tool_id}/actions/{action_id}/disable",
        Role("editor"),
    ),
    (
        "PATCH",
        "/api/v2/agents/{agent_id}/guardrails",
        Role("editor"),
    ),
    ("PUT", "/api/v2/agents/{agent_id}/access", Role("editor")),
    (
        "POST",
        "/api/v2/agents/{agent_id}/annotates",
        Role("editor"),
    ),
    (
        "POST",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        Role("editor"),
    ),
    (
        "PUT",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        Role("editor"),
    ),
    (
        "DELETE",
        "/api/v2/agents/{agent_id}/sharepoint/folder",
        Role("editor"),
    ),
    (
        "GET",
        "/api/v2/agents/{agent_id}/staging-diff",
        Role("viewer"),
    ),
    ("POST", "/api/v2/agents/{agent_id}/publish", Role("admin")),
    ("GET", "/api/v2/agents/{agent_id}/publishes", Role("viewer")),
    (
        "GET",
        "/api/v2/agents/{agent_id}/publishes/{change_track_id}/diff",
        Role("viewer"),
    ),
    ("PUT", "/api/v2/agents/{agent_id}/rollback", Role("editor")),
    // ferry's own API, the remote store's contract.
    ("GET", "/api/ferry/v1/whoami", AnyToken),
    ("GET", "/api/ferry/v1/revision", AnyToken),
    ("GET", "/api/ferry/v1/tenants", AnyToken),
    ("POST", "/api/ferry/v1/tenants", StoreOwner),
    ("GET", "/api/ferry/v1/tenants/{tenant}", Role("viewer")),
    ("DELETE", "/api/ferry/v1/tenants/{tenant}", Role("owner")),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/plan",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/export",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/variables",
        Role("viewer"),
    ),
    (
        "PUT",
        "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
        Role("editor"),
    ),
    (
        "DELETE",
        "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
        Role("editor"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/identity",
        Role("admin"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/index",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/drafts",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/drafts/lookup",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/drafts/stamps",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/write",
        Role("editor"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/versions/lookup",
        Role("viewer"),
    ),
    (
        "PUT",
        "/api/ferry/v1/tenants/{tenant}/versions",
        Role("admin"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/production",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/production/lookup",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/publishes",
        Role("admin"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes/next",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/publishes/{change_track_id}/changes",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/drift",
        Role("viewer"),
    ),
    (
        "GET",
        "/api/ferry/v1/tenants/{tenant}/syncs",
        Role("viewer"),
    ),
    (
        "POST",
        "/api/ferry/v1/tenants/{tenant}/syncs",
        Role("editor"),
    ),
    ("GET", "/api/ferry/v1/access", AnyToken),
    ("POST", "/api/ferry/v1/users", StoreOwner),
    ("PUT", "/api/ferry/v1/grants", Role("owner")),
    ("POST", "/api/ferry/v1/tokens", StoreOwner),
    ("POST", "/api/ferry/v1/tokens/lookup", StoreOwner),
    ("GET", "/api/ferry/v1/tokens", AnyToken),
    ("POST", "/api/ferry/v1/tokens/{token_id}/revoke", AnyToken),
];

/// The JSON body a route of ferry's own API gets: one that decodes, so the
/// answer is about the caller (for a caller let through, a harmless write:
/// stale, empty or refused by the store).
fn ferry_body(method: &str, path: &str) -> Option<serde_json::Value> {
    let keys = ferry::domain::secrets::generate_keypair();
    let publish = serde_json::json!({
        "record": {
            "tenant": "acme-dev", "number": 99, "change_track_id": "chg_matrix",
            "published_by": "matrix", "published_at": "2026-01-01T00:00:00Z", "message": "m",
            "summary": {"created": [], "updated": [], "deleted": []}, "tag": null, "commit": null,
        },
        "versions": [],
    });
    Some(
        match (method, path.rsplit('/').next().unwrap_or_default()) {
            ("POST", "tenants") => serde_json::json!({
                "name": "matrix-tenant", "environment": null,
                "recipient": keys.recipient, "identity": keys.identity,
            }),
            ("POST", "lookup") if path.ends_with("tokens/lookup") => {
                serde_json::json!({"hash": "x"})
            }
            ("POST", "lookup" | "stamps") => serde_json::json!({"ids": []}),
            ("POST", "write") => serde_json::json!({
                "base_revision": 0, "upserts": [], "deletes": [], "refresh": [],
                "commit": null, "versions": [], "syncs": null,
            }),
            ("PUT", "versions") => serde_json::json!({"versions": []}),
            ("POST", "publishes") => publish,
            ("POST", "syncs") => serde_json::json!({"source_key": "matrix/x", "records": []}),
            ("POST", "users") => serde_json::json!({"name": "matrix-user"}),
            ("PUT", "grants") => {
                serde_json::json!({"user": "vera", "tenant": "acme-dev", "role": "viewer"})
            }
            ("POST", "tokens") => {
                serde_json::json!({"hash": "matrix-hash", "user": "root", "tenant": null})
            }
            ("POST", "revoke") => serde_json::json!({"id": "tok_000000000000"}),
            // A tenant deletion checked at revision 0: stale, so an owner let through deletes nothing.
            ("DELETE", "{tenant}") => serde_json::json!({"revision": 0, "force": false}),
            ("PUT", "{variable}") => serde_json::json!({"ciphertext": "ENC[age,not-a-ciphertext]"}),
            _ => return None,
        },
    )
}

/// The support bot of `fixtures/acme`, and a tool and a knowledge base it uses.
const AGENT: &str = "agt_8fybwtpnvna39w5h";
const TOOL: &str = "tol_z1qkv4kj7378pdan";
const CORPUS: &str = "kb_ts11z0we3mf28n3c";

/// The path with every `{param}` filled in with something of acme-dev.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').unwrap() + i;
        out.push_str(match &rest[i + 1..j] {
            "agent_id" | "agentId" => AGENT,
            "tool_id" => TOOL,
            "corpus_id" => CORPUS,
            "targetTenantId" => "acme-staging",
            "step" => "documents",
            "instruction_id" => "ins_none",
            "tenant" => "acme-dev",
            "token_id" => "tok_none",
            "action_id" => "act_none",
            "change_track_id" => "chg_none",
            "variable" => "MATRIX_VAR",
            other => panic!("the matrix does not know how to fill `{{{other}}}` in {path}"),
        });
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    out
}

/// The body a route gets: for ferry's own API one that decodes
/// ([`ferry_body`]), else `{}` for JSON and bytes that are not a ZIP for ZIPs.
fn body(route: &ferry::server::openapi::RouteDoc) -> Option<(&'static str, Vec<u8>)> {
    route.body.map(|ct| {
        let bytes = if ct == "application/zip" {
            b"not a zip".to_vec()
        } else {
            ferry_body(route.method, route.path)
                .map_or_else(|| b"{}".to_vec(), |v| serde_json::to_vec(&v).unwrap())
        };
        (ct, bytes)
    })
}

/// Send `route` (its path filled in, its body) with `token`.
fn ask(server: &Server, route: &ferry::server::openapi::RouteDoc, token: Option<&str>) -> Answer {
    let mut url = server.url(&concrete(route.path));
    if route.query.contains(&"source") {
        url.push_str("?source=matrix%2Fx"); // a required query
    }
    let body = body(route);
    http(
        route.method,
        &url,
        token,
        &[],
        body.as_ref().map(|(ct, b)| (*ct, b.as_slice())),
    )
}

/// One caller of the matrix.
struct Caller {
    name: &'static str,
    token: Option<String>,
    /// Whether the token lets its bearer in at all.
    valid: bool,
    /// Whether the caller owns the whole store.
    store_owner: bool,
    /// The role held on acme-dev (and acme-staging, the target of a tenant sync).
    role: Option<&'static str>,
}

/// Every route of a table has a row of its matrix (`where_`), and every row a route.
pub fn rows_match<'a>(
    routes: impl Iterator<Item = (&'a str, &'a str)>,
    rows: impl Iterator<Item = (&'a str, &'a str)>,
    where_: &str,
) {
    let routes: BTreeSet<(&str, &str)> = routes.collect();
    let rows: BTreeSet<(&str, &str)> = rows.collect();
    let missing: Vec<_> = routes.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in the authorisation matrix ({where_}): {missing:?}"
    );
    let stale: Vec<_> = rows.difference(&routes).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes that are gone: {stale:?}"
    );
}

/// The store as rows, leaving out what a request may record without changing
/// anything (a token's last use, a UI session signed in).
pub fn snapshot(env: &TestEnv) -> StoreImage {
    let url = env
        .store
        .clone()
        .unwrap_or_else(|| "sqlite:.ferry/store.db".to_string());
    let mut image = ferry::backend::store::open_image(&url, &env.repo)
        .unwrap()
        .dump(None)
        .unwrap();
    image
        .tables
        .retain(|t| t.name != "tokens" && t.name != "sessions");
    image
}

pub fn role_rank(role: &str) -> usize {
    ["viewer", "editor", "admin", "owner"]
        .iter()
        .position(|r| *r == role)
        .unwrap()
}

/// The callers: none, revoked, the four roles, and an owner of acme-prod
/// whose token names acme-dev.
fn callers(env: &TestEnv) -> Vec<Caller> {
    let mut out = vec![Caller {
        name: "no token",
        token: None,
        valid: false,
        store_owner: false,
        role: None,
    }];
    env.user("rita", &[("acme-dev", "owner"), ("acme-staging", "owner")]);
    let revoked = env.token("rita", Some("acme-dev"));
    let list = env
        .ferry(&["--as", "root", "token", "list", "--output", "json"])
        .ok()
        .json();
    for t in list["items"].as_array().unwrap() {
        if t["user"] == "rita" {
            env.ferry(&["--as", "root", "token", "revoke", t["id"].as_str().unwrap()])
                .ok();
        }
    }
    out.push(Caller {
        name: "revoked token",
        token: Some(revoked),
        valid: false,
        store_owner: false,
        role: None,
    });
    for (user, role) in [
        ("vera", "viewer"),
        ("ed", "editor"),
        ("ada", "admin"),
        ("olly", "owner"),
    ] {
        env.user(user, &[("acme-dev", role), ("acme-staging", role)]);
        out.push(Caller {
            name: role,
            token: Some(env.token(user, Some("acme-dev"))),
            valid: true,
            store_owner: false,
            role: Some(role),
        });
    }
    env.user("pam", &[("acme-prod", "owner")]);
    out.push(Caller {
        name: "another tenant's owner",
        token: Some(env.token("pam", Some("acme-dev"))),
        valid: true,
        store_owner: false,
        role: None,
    });
    out.push(Caller {
        name: "store owner",
        token: Some(env.token("root", Some("acme-dev"))),
        valid: true,
        store_owner: true,
        role: Some("owner"),
    });
    out
}

/// The status `caller` must get from a route that `needs` this, if it is a
/// refusal; `None` when the caller is let through.
fn refusal(needs: Needs, caller: &Caller) -> Option<u16> {
    match needs {
        Public => None,
        _ if !caller.valid => Some(401),
        AnyToken => None,
        StoreOwner if caller.store_owner => None,
        StoreOwner => Some(403),
        Role(needed) => match caller.role {
            Some(held) if role_rank(held) >= role_rank(needed) => None,
            _ => Some(403),
        },
    }
}

#[test]
fn every_route_answers_every_caller_as_documented_and_refusals_change_nothing() {
    // Every route has a row, and every row a route.
    rows_match(
        ROUTES.iter().map(|r| (r.method, r.path)),
        NEEDS.iter().map(|(m, p, _)| (*m, *p)),
        "tests/it/matrix.rs NEEDS",
    );

    let (env, _root) = acme_server_env();
    let callers = callers(&env);
    let server = Server::start(&env, &[]);
    let needs_of = |r: &ferry::server::openapi::RouteDoc| {
        NEEDS
            .iter()
            .find(|(m, p, _)| *m == r.method && *p == r.path)
            .map(|(_, _, n)| *n)
            .unwrap()
    };

    // First every refusal: each answers its status, and the store stays as it was.
    let before = snapshot(&env);
    let mut cells = 0;
    for route in ROUTES {
        for caller in &callers {
            let Some(expected) = refusal(needs_of(route), caller) else {
                continue;
            };
            let a = ask(&server, route, caller.token.as_deref());
            assert_eq!(
                a.status,
                expected,
                "{} {} as {}: {}",
                route.method,
                route.path,
                caller.name,
                String::from_utf8_lossy(&a.body)
            );
            let e = a.json();
            let code = e["error"]["code"].as_str().unwrap_or_default();
            assert_eq!(
                code,
                if expected == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                },
                "{e}"
            );
            cells += 1;
        }
    }
    // An owner of acme-prod, on their own tenant, never reaches acme-dev's agent.
    let pam_prod = env.token("pam", Some("acme-prod"));
    for route in ROUTES.iter().filter(|r| r.path.contains("{agent")) {
        let a = ask(&server, route, Some(&pam_prod));
        let text = String::from_utf8_lossy(&a.body);
        assert!(
            [400, 403, 404].contains(&a.status) && !text.contains("support-bot"),
            "{} {} as acme-prod's owner: {} {text}",
            route.method,
            route.path,
            a.status,
        );
    }
    assert_eq!(
        snapshot(&env),
        before,
        "a refused request changed the store"
    );

    // Then every caller let through: never a 401, 403 or 5xx.
    for route in ROUTES {
        for caller in &callers {
            if refusal(needs_of(route), caller).is_some() {
                continue;
            }
            let a = ask(&server, route, caller.token.as_deref());
            assert!(
                ![401, 403].contains(&a.status) && a.status < 500,
                "{} {} as {}: {} {}",
                route.method,
                route.path,
                caller.name,
                a.status,
                String::from_utf8_lossy(&a.body)
            );
            if needs_of(route) == Public {
                assert_eq!(a.status, 200, "{} {}", route.method, route.path);
            }
            cells += 1;
        }
    }
    assert_eq!(cells, ROUTES.len() * callers.len());
}
