//! The web UI's forms in the authorisation matrix (issue 14, "Keep it
//! so"): every writing route of the UI's table
//! (`ferry::server::ui::UI_ROUTES`) × {no session, viewer, editor, admin,
//! owner, another tenant's owner}, each with a valid CSRF token, answers as
//! [`UI_NEEDS`] documents: a browser without a session goes to sign in, a
//! lacking role is a 403 page, an allowed role succeeds. A form without
//! its CSRF token, or with another one, is a 403 too; every refusal changes
//! nothing in the store. A writing form added to the table without a row
//! here fails the test.

use ferry::server::ui::UI_ROUTES;

use crate::common::*;
use crate::matrix::{role_rank, rows_match, snapshot};
use crate::serve::acme_server_env;

/// What a writing form asks of its browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: the sign-in form itself.
    Anyone,
    /// A signed-in session, whatever its roles.
    Session,
    /// At least this role on the path's tenant (for a sync, on the target too).
    Role(&'static str),
}

use Needs::*;

/// The documented requirement of every writing form of the UI.
const UI_NEEDS: &[(&str, &str, Needs)] = &[
    ("POST", "/sign-in", Anyone),
    ("POST", "/sign-out", Session),
    ("POST", "/t/{tenant}/syncable/{id}", Role("editor")),
    ("POST", "/t/{tenant}/agents/{agent}/edit", Role("editor")),
    ("POST", "/t/{tenant}/agents/{agent}/publish", Role("admin")),
    (
        "POST",
        "/t/{tenant}/history/{change}/revert",
        Role("editor"),
    ),
    ("POST", "/t/{tenant}/sync", Role("admin")),
    ("POST", "/t/{tenant}/import", Role("editor")),
    ("POST", "/t/{tenant}/import/preview", Role("editor")),
    ("POST", "/t/{tenant}/live-sync", Role("editor")),
];

/// The support bot of `fixtures/acme`.
const AGENT_ID: &str = "agt_8fybwtpnvna39w5h";
const T: &str = "acme-dev";

/// What the forms need from the store: a publish to revert and an export to import.
struct Fixture {
    change: String,
    zip_base64: String,
    zip: Vec<u8>,
}

fn concrete(path: &str, fx: &Fixture) -> String {
    path.replace("{tenant}", T)
        .replace("{id}", AGENT_ID)
        .replace("{agent}", "support-bot")
        .replace("{change}", &fx.change)
}

/// The form fields that make a route succeed for an allowed caller (the CSRF token aside).
fn fields<'a>(path: &str, fx: &'a Fixture) -> Vec<(&'static str, &'a str)> {
    match path {
        "/t/{tenant}/syncable/{id}" => vec![("syncable", "true")],
        "/t/{tenant}/agents/{agent}/edit" => vec![("form", "actions")],
        "/t/{tenant}/agents/{agent}/publish" => vec![("message", "from the matrix")],
        "/t/{tenant}/sync" => vec![("target", "acme-staging")],
        "/t/{tenant}/import" => vec![("strategy", "merge"), ("zip", &fx.zip_base64)],
        // The sync step of a previewed archive: no source instance is asked.
        "/t/{tenant}/live-sync" => vec![
            ("step", "execute"),
            ("zip", &fx.zip_base64),
            ("selected", AGENT_ID),
        ],
        _ => vec![],
    }
}

/// Post `path`'s form with `cookie` and `csrf` (none: left out).
fn post(
    server: &Server,
    path: &str,
    fx: &Fixture,
    cookie: Option<&str>,
    csrf: Option<&str>,
) -> Page {
    let mut all: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
    all.extend(fields(path, fx));
    let url = server.url(&concrete(path, fx));
    if path.ends_with("/import/preview") {
        all.push(("strategy", "merge"));
        let (ct, body) = multipart(&all, &fx.zip);
        return browse("POST", &url, cookie, Some((&ct, &body)));
    }
    browse("POST", &url, cookie, Some((FORM, &form_body(&all))))
}

/// One browser of the matrix.
struct Caller {
    name: &'static str,
    token: Option<String>,
    role: Option<&'static str>,
}

impl Caller {
    fn session(&self, server: &Server) -> Option<UiSession> {
        self.token.as_deref().map(|t| UiSession::sign_in(server, t))
    }
}

/// Whether `caller` is let through a form that `needs` this.
fn allowed(needs: Needs, caller: &Caller) -> bool {
    match needs {
        Anyone => true,
        Session => caller.token.is_some(),
        Role(needed) => caller
            .role
            .is_some_and(|held| role_rank(held) >= role_rank(needed)),
    }
}

fn callers(env: &TestEnv) -> Vec<Caller> {
    let mut out = vec![Caller {
        name: "no session",
        token: None,
        role: None,
    }];
    for (user, role) in [
        ("vera", "viewer"),
        ("ed", "editor"),
        ("ada", "admin"),
        ("olly", "owner"),
    ] {
        env.user(user, &[(T, role), ("acme-staging", role)]);
        out.push(Caller {
            name: role,
            token: Some(env.token(user, Some(T))),
            role: Some(role),
        });
    }
    env.user("pam", &[("acme-prod", "owner")]);
    out.push(Caller {
        name: "another tenant's owner",
        token: Some(env.token("pam", Some("acme-prod"))),
        role: None,
    });
    out
}

/// A publish (through the CLI) and the support bot's export (through the API, as root).
fn fixture(env: &TestEnv, server: &Server, root: &str) -> Fixture {
    let p = env
        .ferry(&[
            "--as", "root", "publish", "--tenant", T, "-m", "first", "--output", "json",
        ])
        .ok()
        .json();
    let export = server.url(&format!("/backup/export/{AGENT_ID}"));
    let zip = http("POST", &export, Some(root), &[], None);
    assert_eq!(zip.status, 200);
    Fixture {
        change: p["changeTrackId"].as_str().unwrap().to_string(),
        zip_base64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zip.body),
        zip: zip.body,
    }
}

#[test]
fn every_ui_form_answers_every_browser_as_documented_and_refusals_change_nothing() {
    // Every writing form of the table has a row, and every row a form.
    rows_match(
        UI_ROUTES
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| (r.method, r.path)),
        UI_NEEDS.iter().map(|(m, p, _)| (*m, *p)),
        "tests/it/ui_matrix.rs UI_NEEDS",
    );

    let (env, root) = acme_server_env();
    let callers = callers(&env);
    let server = Server::start(&env, &[]);
    let fx = fixture(&env, &server, &root);
    let sessions: Vec<Option<UiSession>> = callers.iter().map(|c| c.session(&server)).collect();
    let owner = sessions[4].as_ref().unwrap();
    let writing = || {
        UI_NEEDS
            .iter()
            .filter(|(_, p, _)| *p != "/sign-in" && *p != "/sign-out")
    };

    // First every refusal: the status, and the store as it was.
    let before = snapshot(&env);
    let mut cells = 0;
    for (_, path, needs) in writing() {
        for (caller, session) in callers.iter().zip(&sessions) {
            if allowed(*needs, caller) {
                continue;
            }
            let page = post(
                &server,
                path,
                &fx,
                session.as_ref().map(|s| s.cookie.as_str()),
                session.as_ref().map(|s| s.csrf.as_str()),
            );
            match session {
                None => {
                    assert_eq!(
                        page.status,
                        303,
                        "{path} without a session: {}",
                        page.text()
                    );
                    assert_eq!(page.location.as_deref(), Some("/sign-in"), "{path}");
                }
                Some(_) => {
                    assert_eq!(
                        page.status,
                        403,
                        "{path} as {}: {}",
                        caller.name,
                        page.text()
                    );
                    assert!(
                        page.text().contains("Not allowed"),
                        "{path}: {}",
                        page.text()
                    );
                }
            }
            cells += 1;
        }
        // The owner's session, without its CSRF token and with another session's.
        let other = sessions[1].as_ref().unwrap();
        for csrf in [None, Some(other.csrf.as_str()), Some("forged")] {
            let page = post(&server, path, &fx, Some(&owner.cookie), csrf);
            assert_eq!(
                page.status,
                403,
                "{path} with CSRF {csrf:?}: {}",
                page.text()
            );
            assert!(page.text().contains("CSRF"), "{path}: {}", page.text());
        }
    }
    // Live sync is one form with three steps (list, preview, sync): each needs an editor.
    let viewer = sessions[1].as_ref().unwrap();
    for step in ["agents", "preview", "execute"] {
        let page = viewer.post(
            &server,
            &format!("/t/{T}/live-sync"),
            &[
                ("step", step),
                ("source", "https://example.invalid"),
                ("agent", AGENT_ID),
                ("zip", &fx.zip_base64),
                ("selected", AGENT_ID),
            ],
        );
        assert_eq!(page.status, 403, "live sync {step}: {}", page.text());
    }
    // A refusal does not tell which agents exist: an unknown agent is
    // refused as a known one is, before it is looked up.
    let editor = sessions[2].as_ref().unwrap();
    for (form, session, role) in [("edit", viewer, "editor"), ("publish", editor, "admin")] {
        let path = format!("/t/{T}/agents/no-such-agent/{form}");
        let page = session.post(&server, &path, &[("message", "x")]);
        assert_eq!(page.status, 403, "{path}: {}", page.text());
        assert!(page.text().contains(role), "{path}: {}", page.text());
    }
    assert_eq!(snapshot(&env), before, "a refused form changed the store");

    // Then every caller let through succeeds: a page or a redirect, never to sign in.
    for (_, path, needs) in writing() {
        for (caller, session) in callers.iter().zip(&sessions) {
            if !allowed(*needs, caller) {
                continue;
            }
            let s = session.as_ref().unwrap();
            let page = post(&server, path, &fx, Some(&s.cookie), Some(&s.csrf));
            assert!(
                [200, 303].contains(&page.status) && page.location.as_deref() != Some("/sign-in"),
                "{path} as {}: {} {:?} {}",
                caller.name,
                page.status,
                page.location,
                page.text()
            );
            cells += 1;
        }
    }

    // Signing in needs no session; a bad token is refused.
    let bad = browse(
        "POST",
        &server.url("/sign-in"),
        None,
        Some((FORM, &form_body(&[("token", "fy_nope")]))),
    );
    assert_eq!(bad.status, 401, "{}", bad.text());
    assert!(bad.set_cookie.is_none());
    // Signing out: without a session to sign in; with one, only with its CSRF token; then the session is gone.
    let out = browse("POST", &server.url("/sign-out"), None, Some((FORM, b"")));
    assert_eq!(out.location.as_deref(), Some("/sign-in"));
    for caller in callers.iter().skip(1) {
        let s = caller.session(&server).unwrap();
        let forged = browse(
            "POST",
            &server.url("/sign-out"),
            Some(&s.cookie),
            Some((FORM, &form_body(&[("csrf", "forged")]))),
        );
        assert_eq!(forged.status, 403, "{}", forged.text());
        assert_eq!(
            s.get(&server, "/").status,
            200,
            "a forged sign-out ended the session"
        );
        let done = s.post(&server, "/sign-out", &[]);
        assert_eq!(
            (done.status, done.location.as_deref()),
            (303, Some("/sign-in"))
        );
        assert_eq!(
            s.get(&server, "/").location.as_deref(),
            Some("/sign-in"),
            "{}",
            caller.name
        );
        cells += 1;
    }
    assert_eq!(
        cells,
        (UI_NEEDS.len() - 2) * callers.len() + callers.len() - 1
    );
}
