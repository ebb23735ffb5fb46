//! The secret scan (issue 14, "Keep it so"): every flow runs on a tree that
//! holds a recognisable encrypted secret and a recognisable header token;
//! then git history (every object), every ZIP, every CLI output, the server
//! log, every HTTP body and every page of the web UI (signed in: tenants,
//! resources, the agent editor, the staging diff, the history and revert
//! previews, the sync panel, the ZIP pages, the live-sync page) are searched for both
//! plaintexts, and neither is found.

use crate::common::*;

/// The plaintext behind the `ENC[age,…]` value of the CRM connection's API key.
const ENC_PLAIN: &str = "sk-live-ENCSCAN0000777";
/// The recognisable part of a header token.
const HDR_MARK: &str = "HDRSCAN4242";
const HDR: &str = "Bearer sk-live-HDRSCAN4242";
const CRM: &str = "tenants/acme-dev/connections/crm.yaml";
const AGENT: &str = "agt_8fybwtpnvna39w5h";

/// Everything a flow showed, by where it came from.
#[derive(Default)]
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn run(&mut self, label: &str, run: Run) -> Run {
        let text = format!("{}\n{}", run.stdout, run.stderr);
        self.0.push((label.to_string(), text.into_bytes()));
        run
    }

    fn bytes(&mut self, label: &str, bytes: Vec<u8>) {
        self.0.push((label.to_string(), bytes));
    }

    /// A ZIP: its raw bytes and every entry inflated.
    fn zip(&mut self, label: &str, bytes: &[u8]) {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut inflated).unwrap();
            let name = f.name().map(|n| n.into_owned()).unwrap_or_default();
            self.bytes(&format!("{label}: {name}"), inflated);
        }
        self.bytes(label, bytes.to_vec());
    }

    fn http(&mut self, label: &str, a: Answer) -> Answer {
        self.bytes(label, a.body.clone());
        a
    }

    /// Panic naming every place either plaintext showed up.
    fn assert_clean(&self) {
        let leaks: Vec<String> = self
            .0
            .iter()
            .flat_map(|(label, bytes)| {
                [ENC_PLAIN, HDR_MARK]
                    .into_iter()
                    .filter(|p| bytes.windows(p.len()).any(|w| w == p.as_bytes()))
                    .map(move |p| format!("{label} shows {p}: {}", String::from_utf8_lossy(bytes)))
            })
            .collect();
        assert!(
            leaks.is_empty(),
            "plaintext secrets leaked:\n{}",
            leaks.join("\n")
        );
        assert!(
            self.0.len() > 30,
            "too few places scanned: {}",
            self.0.len()
        );
    }
}

/// `tenants/acme-dev/connections/crm.yaml` with the encrypted API key and,
/// if `header`, the header token.
fn crm_with(env: &TestEnv, original: &str, enc: &str, header: bool) {
    let mut text = original.replace("${vars.CRM_API_KEY}", enc);
    if header {
        text = text.replace("support-platform", &format!("\"{HDR}\""));
    }
    env.write(CRM, &text);
}

/// The flows that read a tree: the header token is refused, without being echoed.
fn tree_flows(env: &TestEnv, seen: &mut Seen) {
    for (label, args) in [
        ("validate", &["validate", "--tenant", "acme-dev"][..]),
        ("plan text", &["plan", "--tenant", "acme-dev"]),
        (
            "plan json",
            &["plan", "--tenant", "acme-dev", "--output", "json"],
        ),
        (
            "plan markdown",
            &["plan", "--tenant", "acme-dev", "--output", "markdown"],
        ),
        ("apply", &["apply", "--tenant", "acme-dev", "--yes"]),
    ] {
        seen.run(label, env.ferry(args).expect(1));
    }
}

/// The header token in the stored drafts (a store written before the check).
fn plant_header_token(env: &TestEnv) {
    let conn = rusqlite::Connection::open(env.repo.join(".ferry/store.db")).unwrap();
    conn.execute(
        "UPDATE resources SET document = replace(document, 'support-platform', ?1) \
         WHERE tenant = 'acme-dev'",
        [HDR],
    )
    .unwrap();
}

/// The CLI flows over the store: exports, promote, publish, revert.
fn store_flows(env: &TestEnv, seen: &mut Seen) {
    let zip = env.tmp.path().join("all.zip");
    let zip_arg = zip.to_str().unwrap();
    let dev = ["--tenant", "acme-dev"];
    let promote = ["promote", "--from", "acme-dev", "--to", "acme-staging"];
    let flows: Vec<(&str, Vec<&str>)> = vec![
        (
            "export --commit",
            [&["export"][..], &dev, &["--commit", "-m", "export"]].concat(),
        ),
        (
            "zip export",
            [&["zip", "export"][..], &dev, &["--all", "-o", zip_arg]].concat(),
        ),
        (
            "zip preview",
            [
                &["zip", "export"][..],
                &dev,
                &["--agent", "support-bot", "--preview"],
            ]
            .concat(),
        ),
        ("promote dry-run", [&promote[..], &["--dry-run"]].concat()),
        ("promote", [&promote[..], &["--yes"]].concat()),
        (
            "publish",
            [&["publish"][..], &dev, &["-m", "scan"]].concat(),
        ),
        ("publishes", [&["publishes"][..], &dev].concat()),
        (
            "revert preview",
            [&["revert"][..], &dev, &["1", "--preview"]].concat(),
        ),
        ("revert", [&["revert"][..], &dev, &["1", "--yes"]].concat()),
        ("diff", [&["diff"][..], &dev].concat()),
    ];
    for (label, args) in flows {
        let all = [&["--as", "root"][..], &args].concat();
        seen.run(label, env.ferry(&all));
    }
    seen.zip("zip export file", &std::fs::read(&zip).unwrap());
}

/// The HTTP flows: reads, exports, staging edits (one refused for the token), the publish endpoints.
fn http_flows(env: &TestEnv, seen: &mut Seen) {
    let token = env.token("root", Some("acme-dev"));
    let server = Server::start(env, &[]);
    let t = Some(token.as_str());
    let agent = format!("/api/v2/agents/{AGENT}");
    let edit = |body: serde_json::Value| http_json("PUT", &server.url(&agent), t, &body);
    let refused = edit(serde_json::json!({"description": format!("debug with {HDR}")}));
    assert_eq!(refused.status, 400);
    seen.http("staging edit with the token", refused);
    seen.http(
        "staging edit",
        edit(serde_json::json!({"description": "Scanned support bot"})),
    );
    let export = format!("/backup/export/{AGENT}");
    let mut zip = Vec::new();
    for (method, path) in [
        ("GET", "/api/tenants".to_string()),
        ("GET", "/api/v2/agents".to_string()),
        ("GET", agent.clone()),
        ("GET", format!("{agent}/staging-diff")),
        ("GET", format!("{agent}/publishes")),
        ("POST", format!("{export}/preview")),
        ("POST", export.clone()),
        ("POST", format!("{agent}/publish")),
    ] {
        let a = http(method, &server.url(&path), t, &[], None);
        if path == export {
            assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
            seen.zip("HTTP export", &a.body);
            zip = a.body.clone();
        }
        seen.http(&format!("{method} {path}"), a);
    }
    let import = http(
        "POST",
        &server.url("/backup/import/preview"),
        t,
        &[],
        Some(("application/zip", &zip)),
    );
    seen.http("import preview", import);
    ui_flows(&server, &token, seen);
    seen.bytes("server log", server.log().into_bytes());
}

/// The web UI: signed in, every page of acme-dev (tenants, resources, the
/// agent editor, the staging diff, the history and each revert preview,
/// the sync panel with its preview and run, the ZIP pages, the live-sync
/// page and its sync step of the exported ZIP, and an editor save the token
/// is refused in), each scanned as HTML.
fn ui_flows(server: &Server, token: &str, seen: &mut Seen) {
    let ui = UiSession::sign_in(server, token);
    let dev = "/t/acme-dev";
    let bot = format!("{dev}/agents/support-bot");
    let mut page = |label: &str, path: &str| -> Page {
        let p = ui.get(server, path);
        assert!(
            [200, 303].contains(&p.status),
            "{path}: {} {}",
            p.status,
            p.text()
        );
        seen.bytes(&format!("UI {label}"), p.body.clone());
        p
    };
    page("tenants", "/");
    page("resources", dev);
    page("resources found", &format!("{dev}?q=crm"));
    page("agent editor", &bot);
    page("staging diff", &format!("{bot}/diff"));
    let history = page("history", &format!("{dev}/history")).text();
    let changes: std::collections::BTreeSet<&str> = history
        .match_indices("/history/chg_")
        .map(|(i, _)| {
            let rest = &history[i + "/history/".len()..];
            &rest[..rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap()]
        })
        .collect();
    assert!(!changes.is_empty(), "no publish in the history: {history}");
    for change in &changes {
        page("revert preview", &format!("{dev}/history/{change}"));
    }
    page("sync panel", &format!("{dev}/sync"));
    page("sync preview", &format!("{dev}/sync?target=acme-staging"));
    let tree = page("export preview", &format!("{bot}/export")).text();
    let selected: Vec<(&str, &str)> = tree
        .split("name=\"selected\" value=\"")
        .skip(1)
        .map(|rest| ("selected", &rest[..rest.find('"').unwrap()]))
        .collect();
    assert!(!selected.is_empty(), "{tree}");
    let query = String::from_utf8(form_body(&selected)).unwrap();
    let zip = page("export ZIP", &format!("{bot}/export.zip?{query}")).body;
    page("import", &format!("{dev}/import"));
    page("live sync", &format!("{dev}/live-sync"));
    let (ct, body) = multipart(&[("csrf", &ui.csrf), ("strategy", "merge")], &zip);
    let preview = browse(
        "POST",
        &server.url(&format!("{dev}/import/preview")),
        Some(&ui.cookie),
        Some((&ct, &body)),
    );
    assert_eq!(preview.status, 200, "{}", preview.text());
    seen.zip("UI export ZIP", &zip);
    seen.bytes("UI import preview", preview.body);
    let zip64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &zip);
    let imported = ui.post(
        server,
        &format!("{dev}/import"),
        &[("strategy", "merge"), ("zip", &zip64)],
    );
    seen.bytes("UI import", imported.body);
    let live = ui.post(
        server,
        &format!("{dev}/live-sync"),
        &[("step", "execute"), ("zip", &zip64), ("selected", AGENT)],
    );
    assert_eq!(live.status, 200, "{}", live.text());
    seen.bytes("UI live sync", live.body);
    let synced = ui.post(
        server,
        &format!("{dev}/sync"),
        &[("target", "acme-staging")],
    );
    seen.bytes("UI sync", synced.body);
    let refused = ui.post(
        server,
        &format!("{bot}/edit"),
        &[("description", &format!("debug with {HDR}"))],
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("id=\"err-description\"")
            && refused.text().contains("bearer token"),
        "the page says why: {}",
        refused.text()
    );
    seen.bytes("UI editor refusing the token", refused.body);
}

#[test]
fn no_flow_shows_an_encrypted_secret_or_a_header_token_in_plain_text() {
    let env = TestEnv::acme();
    if env.store.is_some() {
        return; // the planted token goes into the SQLite file
    }
    let mut seen = Seen::default();
    env.ferry(&["tenant", "create", "acme-staging"]).ok();
    let enc = env
        .ferry_stdin(&["secret", "encrypt", "--tenant", "acme-dev"], ENC_PLAIN)
        .ok()
        .stdout
        .trim()
        .to_string();
    let original = env.read(CRM);
    crm_with(&env, &original, &enc, false);
    env.git(&["init", "-q"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "acme with an encrypted API key"]);

    // A tree with the header token: refused everywhere, never echoed.
    crm_with(&env, &original, &enc, true);
    tree_flows(&env, &mut seen);

    // The tree without it applies; the token then sits in the store as a legacy value.
    crm_with(&env, &original, &enc, false);
    seen.run(
        "apply",
        env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok(),
    );
    plant_header_token(&env);
    env.user("root", &[]);
    store_flows(&env, &mut seen);
    http_flows(&env, &mut seen);

    // Git: every object of the repository, and the history as patches.
    let objects = std::process::Command::new("git")
        .args(["cat-file", "--batch-all-objects", "--batch"])
        .current_dir(&env.repo)
        .output()
        .unwrap();
    seen.bytes("git objects", objects.stdout);
    seen.bytes("git log -p", env.git(&["log", "--all", "-p"]).into_bytes());
    seen.bytes("crm.yaml after export", env.read(CRM).into_bytes());
    seen.assert_clean();
}
