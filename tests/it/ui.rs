//! The web UI in real headless Chromium, driven through WebDriver
//! (chromedriver on a free loopback port, `fantoccini`), as a person would
//! click through it; after each flow the store is checked through the API
//! or the CLI. Each test saves a screenshot under `target/ui-screenshots/`.
//!
//! The tests run when chromedriver and Chromium are found (`/usr/bin/...`,
//! or `FERRY_CHROMEDRIVER` / `FERRY_CHROMIUM`); with
//! `FERRY_REQUIRE_CHROMIUM=1` a missing browser fails them instead.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::*;
use crate::serve::acme_server_env;

/// One browser at a time: the machine is small and shared.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn found(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    p.is_file().then_some(p)
}

/// A headless Chromium session, its chromedriver, and the server's base URL.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// A browser on `base`, or `None` (one line printed) when none is installed and none is required.
    fn start(base: &str) -> Option<Browser> {
        let lock = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
        let driver_bin = found("FERRY_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = found("FERRY_CHROMIUM", "/usr/bin/chromium");
        let (Some(driver_bin), Some(chromium)) = (driver_bin, chromium) else {
            assert!(
                std::env::var("FERRY_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
                "FERRY_REQUIRE_CHROMIUM=1 but chromedriver or chromium is missing"
            );
            eprintln!("ui browser tests skipped: no /usr/bin/chromedriver or /usr/bin/chromium (install Debian's `chromium chromium-driver`, or set FERRY_CHROMEDRIVER and FERRY_CHROMIUM)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wd = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if ureq::get(&format!("{wd}/status")).call().is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-quic", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&wd),
            )
            .expect("a chromium session through chromedriver");
        Some(Browser {
            rt,
            client: Some(client),
            driver,
            base: base.to_string(),
            _profile: profile,
            _lock: lock,
        })
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(self.c().goto(&url)).unwrap();
    }

    /// Wait for the element `css` (after a navigation) and return its text.
    /// An htmx swap may replace the element between finding and reading it:
    /// then it is found again.
    fn wait_text(&self, css: &str) -> String {
        let c = self.c();
        self.rt.block_on(async {
            for _ in 0..50 {
                let e = c
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css(css))
                    .await
                    .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
                match e.text().await {
                    Ok(text) => return text,
                    Err(fantoccini::error::CmdError::Standard(w))
                        if w.error == fantoccini::error::ErrorStatus::StaleElementReference =>
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot read `{css}`: {e}"),
                }
            }
            panic!("`{css}` kept being replaced while it was read")
        })
    }

    /// Wait until the element `css` holds `needle` (an htmx swap lands), and return its text.
    fn wait_text_with(&self, css: &str, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..200 {
            if self.exists(css) {
                text = self.wait_text(css);
                if text.contains(needle) {
                    return text;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("`{css}` never held `{needle}`: {text}");
    }

    fn exists(&self, css: &str) -> bool {
        self.count(css) > 0
    }

    fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    fn click(&self, css: &str) {
        let c = self.c();
        self.rt.block_on(async {
            let e = c
                .wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no `{css}` to click: {e}"));
            e.click().await.unwrap();
        })
    }

    /// Type `text` into the field `css` (after what it holds, unless `clear`).
    fn fill(&self, css: &str, text: &str, clear: bool) {
        let c = self.c();
        self.rt.block_on(async {
            let e = c.find(Locator::Css(css)).await.unwrap();
            if clear {
                e.clear().await.unwrap();
            }
            e.send_keys(text).await.unwrap();
        })
    }

    fn select(&self, css: &str, value: &str) {
        let c = self.c();
        self.rt.block_on(async {
            let e = c.find(Locator::Css(css)).await.unwrap();
            e.select_by_value(value).await.unwrap();
        })
    }

    fn value(&self, css: &str) -> String {
        let c = self.c();
        self.rt.block_on(async {
            let e = c.find(Locator::Css(css)).await.unwrap();
            e.prop("value").await.unwrap().unwrap_or_default()
        })
    }

    fn path(&self) -> String {
        let url = self.rt.block_on(self.c().current_url()).unwrap();
        url.path().to_string()
    }

    /// POST a form from the page (as a forged request would), answering the status.
    fn post_from_page(&self, path: &str, fields: serde_json::Value) -> u64 {
        let script = "const [path, fields, done] = arguments;
            fetch(path, {method: 'POST', body: new URLSearchParams(fields)})
              .then(r => done(r.status), e => done(String(e)));";
        let out = self
            .rt
            .block_on(self.c().execute_async(script, vec![json!(path), fields]))
            .unwrap();
        out.as_u64()
            .unwrap_or_else(|| panic!("fetch failed: {out}"))
    }

    /// Save a screenshot as `target/ui-screenshots/NAME.png`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        let dir = project_root().join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    fn sign_in(&self, token: &str) {
        self.goto("/");
        assert_eq!(
            self.path(),
            "/sign-in",
            "a signed-out browser goes to sign in"
        );
        self.fill("#token", token, true);
        self.click("form button[type=submit]");
        self.wait_text("#signed-in");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A CSS selector for the row of the publish numbered `n`.
fn history_row(n: u64) -> String {
    format!("#history tr[data-number=\"{n}\"]")
}

/// The acme server env with acme-dev published once, so a later diff shows only new edits.
fn published_env() -> (TestEnv, String) {
    let (env, token) = acme_server_env();
    env.ferry(&[
        "--as", "root", "publish", "--tenant", "acme-dev", "-m", "first",
    ])
    .ok();
    (env, token)
}

fn agent_json(server: &Server, token: &str, agent: &str) -> serde_json::Value {
    let url = server.url(&format!("/api/v2/agents/{agent}"));
    http("GET", &url, Some(token), &[], None).expect(200)
}

#[test]
fn staging_edit_diff_publish_history_and_revert_in_a_browser() {
    let (env, token) = published_env();
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);
    let card = b.wait_text("section[data-tenant=\"acme-dev\"]");
    assert!(card.contains("Last publish: #1 by root"), "{card}");
    assert!(card.contains("agents"), "{card}");
    b.screenshot("tenants");

    // Edit the instructions in staging.
    b.goto("/t/acme-dev/agents/support-bot");
    let before = b.value("#instructions");
    b.fill("#instructions", "Always answer in English.\n", false);
    b.click("#save");
    assert!(b.wait_text("#saved").contains("Saved to staging"));
    let api = agent_json(&server, &token, "support-bot");
    let staged = api["spec"]["instructions"].as_str().unwrap().to_string();
    assert!(staged.ends_with("Always answer in English.\n"), "{staged}");
    assert!(staged.starts_with(before.trim_end()), "{staged}");

    // The side-by-side diff shows only that field, line by line.
    b.goto("/t/acme-dev/agents/support-bot/diff");
    b.wait_text("h1");
    assert_eq!(b.count(".resource-diff"), 1, "only the agent changed");
    let diff = http(
        "GET",
        &server.url("/api/v2/agents/support-bot/staging-diff"),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
    assert_eq!(
        b.count(".change"),
        1,
        "only its instructions changed: {diff}"
    );
    assert!(b.exists(".change[data-path=\"spec.instructions\"] .side .before"));
    let added = b.wait_text(".change .after .line.ins");
    assert_eq!(added, "Always answer in English.");
    assert_eq!(b.count(".change .before .line.del"), 0);
    b.screenshot("staging-diff");

    // Publish with a message, and see it in the history.
    b.fill("#message", "Answer in English", true);
    b.click("#publish-button");
    assert!(b.wait_text("#published").contains("Published #2"));
    let row = b.wait_text(&history_row(2));
    assert!(
        row.contains("root") && row.contains("Answer in English"),
        "{row}"
    );
    assert!(row.contains("updated Agent support-bot"), "{row}");
    b.screenshot("history");
    let log = env.publish_log("acme-dev", &[]);
    assert_eq!(log["items"][0]["number"], 2, "{log}");
    assert_eq!(log["items"][0]["publishedBy"], "root", "{log}");

    // After publishing, nothing is left to publish.
    b.goto("/t/acme-dev/agents/support-bot/diff");
    assert_eq!(b.wait_text("#publish-button"), "Nothing to publish");

    // Preview the revert side by side, then revert.
    b.goto("/t/acme-dev/history");
    b.click(&format!("{} a", history_row(2)));
    let removed = b.wait_text(".revert-diff .before .line.del");
    assert_eq!(removed, "Always answer in English.");
    b.screenshot("revert-preview");
    b.click("#revert-button");
    let said = b.wait_text("#reverted");
    assert!(
        said.contains("Production moves at the next publish"),
        "{said}"
    );
    let api = agent_json(&server, &token, "support-bot");
    let staged = api["spec"]["instructions"].as_str().unwrap();
    assert!(!staged.contains("Always answer in English."), "{staged}");
    b.goto("/t/acme-dev/agents/support-bot/diff");
    assert_eq!(
        b.wait_text("#publish-button"),
        "Publish",
        "the revert is staged, not live"
    );
}

#[test]
fn editor_errors_sit_beside_their_field_and_change_nothing() {
    let (env, token) = published_env();
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);
    b.goto("/t/acme-dev/agents/support-bot");
    b.fill("#model\\.temperature", "7", true);
    b.click("#save");
    let err = b.wait_text("#err-model\\.temperature");
    assert!(err.contains("between 0 and 2"), "{err}");
    assert_eq!(
        b.value("#model\\.temperature"),
        "7",
        "the form keeps what was typed"
    );
    b.screenshot("editor-error");
    let api = agent_json(&server, &token, "support-bot");
    assert_eq!(
        api["spec"]["model"]["temperature"], 0.2,
        "nothing was written"
    );
}

/// In a tenant with more tools than the editor offers, a tool is added by
/// typing its name; an unknown name is refused beside the field and
/// nothing is written.
#[test]
fn a_tool_the_editor_does_not_offer_is_added_by_name() {
    let (_env, token, server) = crate::staging::many_tools_served();
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);
    let before = agent_json(&server, &token, "support-bot")["spec"]["tools"].clone();
    b.goto("/t/acme-dev/agents/support-bot");
    b.fill("#tools-add", "extra-0229, nope-tool", true);
    b.click("#save");
    let err = b.wait_text("#err-tools");
    assert!(err.contains("nope-tool"), "{err}");
    let after = agent_json(&server, &token, "support-bot")["spec"]["tools"].clone();
    assert_eq!(after, before, "nothing was written");
    b.goto("/t/acme-dev/agents/support-bot");
    b.fill("#tools-add", "extra-0229", true);
    b.click("#save");
    b.wait_text("#saved");
    let tools = agent_json(&server, &token, "support-bot")["spec"]["tools"].clone();
    assert_eq!(
        tools.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1
    );
    assert!(b.exists("input[name=\"tools\"][value=\"extra-0229\"]:checked"));
}

#[test]
fn syncable_toggle_and_sync_into_a_second_tenant_in_a_browser() {
    let (env, token) = acme_server_env();
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);

    // Search, then mark billing-bot syncable.
    b.goto("/t/acme-dev?q=billing");
    b.wait_text("#resources");
    assert!(b.exists("tr[data-name=\"billing-bot\"]"));
    assert!(
        !b.exists("tr[data-name=\"support-bot\"]"),
        "the search filters"
    );
    assert_eq!(
        b.wait_text("tr[data-name=\"billing-bot\"] td.syncable"),
        "no"
    );
    b.click("tr[data-name=\"billing-bot\"] button");
    assert!(b.wait_text("#toggled").contains("billing-bot is syncable"));
    assert_eq!(
        b.wait_text("tr[data-name=\"billing-bot\"] td.syncable"),
        "yes"
    );
    b.screenshot("resources");
    let agents = http(
        "GET",
        &server.url("/api/v2/agents"),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
    let billing = agents["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "billing-bot")
        .unwrap();
    assert_eq!(billing["syncable"], true);

    // Preview the sync into acme-staging, grouped by step, then run it.
    b.goto("/t/acme-dev/sync");
    b.select("#target", "acme-staging");
    b.click("#preview-button");
    let report = b.wait_text("#sync-report");
    assert!(
        report.contains("Preview: acme-dev → acme-staging"),
        "{report}"
    );
    let agents_step = b.wait_text(".step[data-step=\"agents\"]");
    assert!(agents_step.contains("3 create"), "{agents_step}");
    assert!(agents_step.contains("billing-bot"), "{agents_step}");
    b.screenshot("sync-preview");
    b.click("#sync-button");
    assert!(b
        .wait_text("#synced")
        .contains("Synced acme-dev into acme-staging"));
    b.screenshot("sync-done");
    let staging_token = env.token("root", Some("acme-staging"));
    let there = http(
        "GET",
        &server.url("/api/v2/agents"),
        Some(&staging_token),
        &[],
        None,
    )
    .expect(200);
    let names: Vec<&str> = there["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for n in ["billing-bot", "refund-bot", "support-bot"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
}

#[test]
fn a_viewer_sees_no_controls_and_a_forged_post_is_refused() {
    let (env, _) = published_env();
    env.user("vera", &[("acme-dev", "viewer")]);
    let vera = env.token("vera", None);
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };

    // A wrong token is a readable message, not JSON.
    b.goto("/sign-in");
    b.fill("#token", "fy_wrong", true);
    b.click("form button[type=submit]");
    assert!(b.wait_text("#sign-in-error").contains("not known"));

    b.sign_in(&vera);
    assert!(b.wait_text("#signed-in").contains("vera"));
    let card = b.wait_text("section[data-tenant=\"acme-dev\"]");
    assert!(card.contains("your role: viewer"), "{card}");
    assert!(
        !b.exists("section[data-tenant=\"acme-staging\"]"),
        "only her tenants"
    );

    b.goto("/t/acme-dev/agents/support-bot");
    b.wait_text("h1");
    assert!(!b.exists("#save"), "a viewer has no save button");
    b.goto("/t/acme-dev/agents/support-bot/diff");
    b.wait_text("#publish-needs-admin");
    assert!(
        !b.exists("#publish-button"),
        "a viewer has no publish button"
    );
    b.screenshot("viewer-diff");

    // Forged posts from her own session, with her CSRF token: refused by the role check.
    let csrf = b.value("input[name=csrf]");
    let status = b.post_from_page(
        "/t/acme-dev/agents/support-bot/publish",
        json!({"csrf": csrf, "message": "forged"}),
    );
    assert_eq!(status, 403);
    let status = b.post_from_page(
        "/t/acme-dev/agents/support-bot/edit",
        json!({"csrf": csrf, "name": "support-bot", "instructions": "forged"}),
    );
    assert_eq!(status, 403);
    let status = b.post_from_page(
        "/t/acme-dev/live-sync",
        json!({"csrf": csrf, "source": "https://example.invalid", "step": "agents"}),
    );
    assert_eq!(status, 403, "live sync needs an editor");
    // Without the CSRF token: refused before anything is read.
    let status = b.post_from_page("/t/acme-dev/history/x/revert", json!({}));
    assert_eq!(status, 403);
    let log = env.publish_log("acme-dev", &[]);
    assert_eq!(
        log["items"].as_array().unwrap().len(),
        1,
        "no publish was added: {log}"
    );

    // An error page is a page.
    b.goto("/t/acme-dev/live-sync");
    assert_eq!(b.wait_text("h1"), "Not allowed");
    b.goto("/t/acme-staging");
    let h1 = b.wait_text("h1");
    assert_eq!(h1, "Not allowed");

    // Sign out: the session is gone.
    b.goto("/");
    b.click("header form button");
    b.wait_text("#token");
    b.goto("/t/acme-dev");
    assert_eq!(b.path(), "/sign-in");
}

#[test]
fn zip_export_with_one_resource_left_out_then_import_with_a_preview() {
    let (env, token) = acme_server_env();
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);

    // The preview tree: required entries locked, one optional resource unticked.
    b.goto("/t/acme-dev/agents/support-bot/export");
    b.wait_text("#export");
    assert!(
        b.count("#export input[type=checkbox][disabled]") >= 1,
        "the agent is locked"
    );
    let li = "#export li[data-id^=\"tol_\"]";
    let left_out = b.wait_text(li);
    let left_out = left_out.trim_start_matches("tool ").trim().to_string();
    b.click(&format!("{li} input[type=checkbox]"));
    b.screenshot("export-tree");
    let script = "const [done] = arguments; const f = document.querySelector('#export');
        const q = new URLSearchParams(new FormData(f));
        fetch(f.action + '?' + q).then(r => r.arrayBuffer()).then(buf => {
          let s = ''; new Uint8Array(buf).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); });";
    let out = b.rt.block_on(b.c().execute_async(script, vec![])).unwrap();
    use base64::Engine;
    let zip = base64::engine::general_purpose::STANDARD
        .decode(out.as_str().unwrap())
        .unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).unwrap();
    let names: Vec<String> = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| n.contains("support-bot")), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.contains(&format!("tools/{left_out}."))),
        "{left_out} was left out: {names:?}"
    );
    let file = env.tmp.path().join("support-bot.zip");
    std::fs::write(&file, &zip).unwrap();

    // Staging moves on meanwhile; then import the archive back with `merge`, preview first.
    let url = server.url("/api/v2/agents/support-bot");
    http_json(
        "PUT",
        &url,
        Some(&token),
        &json!({"description": "Edited after the export"}),
    )
    .expect(200);
    b.goto("/t/acme-dev/import");
    b.fill("#archive", file.to_str().unwrap(), false);
    b.select("#strategy", "merge");
    b.click("#import-preview-button");
    let rows = b.wait_text("#import-rows");
    assert!(rows.contains("support-bot"), "{rows}");
    assert!(
        !rows.contains(&left_out),
        "{left_out} is not in the archive: {rows}"
    );
    let row = "#import-rows tr[data-name=\"support-bot\"]";
    let action = b.rt.block_on(async {
        let e = b.c().find(Locator::Css(row)).await.unwrap();
        e.attr("data-action").await.unwrap().unwrap_or_default()
    });
    assert!(
        ["UPDATE", "CONFLICT"].contains(&action.as_str()),
        "{action}"
    );
    if action == "CONFLICT" {
        // A conflict is written only when ticked.
        b.click(&format!("{row} input[type=checkbox]"));
    }
    b.screenshot("import-preview");
    b.click("#import-button");
    b.wait_text("#imported");
    let imported = b.wait_text("main");
    assert!(imported.contains("Imported into acme-dev"), "{imported}");
    b.screenshot("import-done");
    let api = agent_json(&server, &token, "support-bot");
    assert_ne!(
        api["spec"]["description"], "Edited after the export",
        "the archive's agent was written: {imported}"
    );
}

#[test]
fn live_sync_from_a_second_server_in_a_browser() {
    use crate::serve::{agent_id, sync_config, target_env};
    let (src_env, src_token) = acme_server_env();
    let source = Server::start(&src_env, &[]);
    let (env, token) = target_env();
    let config = sync_config(&env, &[&source.base]);
    let server = Server::start(&env, &["--config", &config]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);
    let agents = |who: &Server, t: &str| {
        http("GET", &who.url("/api/v2/agents"), Some(t), &[], None).expect(200)["items"]
            .as_array()
            .unwrap()
            .len()
    };

    // A refused source is a readable message on the page, and changes nothing.
    b.goto("/t/acme-prod");
    b.click("nav.tenant a[href=\"/t/acme-prod/live-sync\"]");
    b.wait_text("#live-sync");
    for url in ["http://169.254.169.254/", "https://169.254.169.254/"] {
        b.fill("#source", url, true);
        b.click("#list-button");
        let refused = b.wait_text_with("#live-error", url);
        assert!(refused.contains("[sync]"), "names the rules: {refused}");
        assert!(
            !refused.trim_start().starts_with('{'),
            "not JSON: {refused}"
        );
        b.screenshot("live-sync-refused");
    }
    assert_eq!(agents(&server, &token), 0, "nothing was written");

    // List the source's agents, preview one, sync it.
    b.fill("#source", &source.base, true);
    b.fill("#source-token", &src_token, true);
    b.click("#list-button");
    let row = "#source-agents tr[data-name=\"support-bot\"]";
    let listed = b.wait_text(row);
    assert!(listed.contains("support-bot"), "{listed}");
    b.click(&format!("{row} input[type=radio]"));
    b.click("#live-preview-button");
    assert_eq!(
        b.wait_text("#live-preview"),
        "Preview of agent support-bot into acme-prod"
    );
    let rows = b.wait_text("#import-rows");
    assert!(rows.contains("support-bot"), "{rows}");
    let action = b.wait_text("#import-rows tr[data-name=\"support-bot\"] .badge");
    assert_eq!(action, "CREATE");
    b.screenshot("live-sync-preview");
    assert_eq!(agents(&server, &token), 0, "a preview writes nothing");
    let page = b.rt.block_on(b.c().source()).unwrap();
    assert!(
        !page.contains(&src_token),
        "the source token is not in the page"
    );
    assert_eq!(b.value("#source-token"), src_token, "the field keeps it");
    b.click("#live-sync-button");
    let done = b.wait_text("#imported");
    assert!(done.contains("Imported into acme-prod"), "{done}");
    b.screenshot("live-sync-done");

    // The agent arrived, as the source has it.
    let local = agent_id(&server, &token, "support-bot");
    let there = agent_json(&server, &token, &local);
    let src_id = agent_id(&source, &src_token, "support-bot");
    let at_source = agent_json(&source, &src_token, &src_id);
    assert_eq!(
        there["spec"]["instructions"],
        at_source["spec"]["instructions"]
    );
    assert!(there["spec"]["instructions"].is_string(), "{there}");
    let log = server.log.lock().unwrap().clone();
    assert!(!log.contains(&src_token), "the token is not logged");
}

#[test]
fn snippets_and_tool_action_settings_in_the_editor() {
    let (env, token) = published_env();
    let server = Server::start(&env, &[]);
    let Some(b) = Browser::start(&server.base) else {
        return;
    };
    b.sign_in(&token);
    let snippets = || agent_json(&server, &token, "support-bot")["spec"]["snippets"].clone();

    // Change one snippet's text and add one.
    b.goto("/t/acme-dev/agents/support-bot");
    assert_eq!(b.value("#snippet-0-name"), "greeting");
    b.fill("#snippet-0-text", "Hello there.", true);
    b.fill("#snippet-2-name", "apology", true);
    b.fill("#snippet-2-text", "Sorry for the wait.", true);
    b.click("#save");
    assert!(b.wait_text("#saved").contains("Saved to staging"));
    assert_eq!(
        snippets(),
        json!([
            {"name": "greeting", "text": "Hello there."},
            {"name": "sign-off", "text": "Is there anything else I can help you with today?\nThe Acme Support Team\n"},
            {"name": "apology", "text": "Sorry for the wait."},
        ])
    );
    let saved = agent_json(&server, &token, "support-bot");
    assert_eq!(saved["lastChangedBy"], "root", "the writer is recorded");

    // A second snippet of the same name is refused beside it; nothing is written.
    b.fill("#snippet-3-name", "greeting", true);
    b.fill("#snippet-3-text", "Hi again.", true);
    b.click("#save");
    let err = b.wait_text("#err-snippet-3");
    assert!(err.contains("same name"), "{err}");
    assert_eq!(b.value("#snippet-3-text"), "Hi again.", "the form keeps it");
    b.screenshot("editor-snippet-error");
    assert_eq!(
        snippets().as_array().unwrap().len(),
        3,
        "nothing was written"
    );

    // A tool action's settings: bad JSON is refused beside the field, then saved.
    let exported = |name: &str| {
        let out = env.tmp.path().join(name);
        env.ferry(&[
            "--as",
            "root",
            "export",
            "--tenant",
            "acme-dev",
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
        std::fs::read_to_string(out.join("tools/crm-lookup.yaml")).unwrap()
    };
    b.goto("/t/acme-dev/agents/support-bot");
    let settings = "div.action[data-action=\"crm-lookup/list-orders\"] textarea";
    assert!(b.value(settings).contains("\"limit\": 20"));
    b.fill(settings, "{\"limit\": 5", true);
    b.click("#save-actions");
    let err = b.wait_text("div.action[data-action=\"crm-lookup/list-orders\"] .field-error");
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(exported("before").contains("limit: 20"));
    b.fill(settings, "{\"limit\": 5}", true);
    b.click("#save-actions");
    assert!(b.wait_text("#saved").contains("Saved to staging"));
    b.screenshot("editor-tool-actions");
    let tool = exported("after");
    assert!(
        tool.contains("limit: 5") && !tool.contains("limit: 20"),
        "{tool}"
    );
}
