//! `ferry demo`: the whole story, end to end, in a temporary folder, narrated.
//!
//! The demo drives the same command functions a user runs (each step is a
//! command line parsed by the real argument parser), against the
//! `fixtures/acme` config repo embedded in the binary: a new repo, a tenant,
//! validate, plan, apply, a commit, a publish, a one-line change reviewed
//! and applied from git, the staging diff, a second publish, a revert
//! preview, a promotion to staging, a ZIP artifact, and the HTTP API on a
//! loopback port.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use clap::Parser;

use super::commands::run;
use super::{Cli, Global, Output, EXIT_OK};
use crate::backend::sync_config::ServerConfig;
use crate::backend::vcs;
use crate::domain::tree::folder::FolderSource;
use crate::domain::tree::TreeSource;
use crate::service::serving::{ServeFn, ServeRequest};

include!(concat!(env!("OUT_DIR"), "/acme_fixture.rs"));

/// The demo's running state: where it is and how it prints.
struct Demo<'a> {
    out: &'a Output,
    global: Global,
    repo: std::path::PathBuf,
    frontends: super::Frontends,
}

impl Demo<'_> {
    fn say(&self, text: &str) {
        self.out.status("");
        self.out.status(&format!("== {text}"));
    }

    /// Run `ferry ARGS` as a user would type it, in the demo repo; the line
    /// printed is shell-quoted, so it can be pasted.
    fn ferry(&self, args: &[&str]) -> Result<i32> {
        self.out.status(&format!("$ {}", shell_line("ferry", args)));
        let cli = Cli::try_parse_from(std::iter::once("ferry").chain(args.iter().copied()))
            .map_err(|e| anyhow!("demo step `ferry {}`: {e}", args.join(" ")))?;
        run(cli.command, &self.global, self.out, &self.frontends)
    }

    /// Commit the tenant folder as it is on disk, as a pull request would.
    fn commit_tenant(&self, message: &str) -> Result<()> {
        let dir = self.repo.join("tenants/acme-dev");
        let source = FolderSource::new(&dir);
        let mut files = std::collections::BTreeMap::new();
        for p in source.list()? {
            files.insert(p.clone(), source.read(&p)?);
        }
        vcs::commit_folder(&self.repo, "tenants/acme-dev", files, message, None)?;
        self.out.status(&format!(
            "$ {}",
            shell_line("git", &["commit", "-m", message])
        ));
        Ok(())
    }
}

/// `program ARGS` as a shell line: each argument quoted where the shell needs it.
fn shell_line(program: &str, args: &[&str]) -> String {
    let words = std::iter::once(program).chain(args.iter().copied());
    shlex::try_join(words).unwrap_or_else(|_| {
        // Only a NUL byte cannot be quoted; no demo argument has one.
        std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Run the demo.
pub fn run_demo(out: &Output, keep: bool, serve: ServeFn) -> Result<i32> {
    let tmp = tempfile::Builder::new().prefix("ferry-demo-").tempdir()?;
    let repo = tmp.path().join("acme-config");
    let d = Demo {
        out,
        global: Global {
            repo: Some(repo.clone()),
            store: None,
            token_file: None,
            output: super::Format::Text,
            actor: Some("demo".into()),
        },
        repo: repo.clone(),
        frontends: super::Frontends { serve },
    };

    d.say("A new config repo: ferry.toml, tenants/, .gitignore and a git repository.");
    d.ferry(&["init", &repo.display().to_string()])?;
    vcs::set_local_identity(
        &repo,
        &vcs::Identity {
            name: "Ferry Demo".into(),
            email: "demo@ferry.invalid".into(),
        },
    )?;

    copy_fixture(&d)?;

    d.say("Create the tenant in the store. It adopts the folder and gets an age key pair: the private key stays in the store, the public key goes to tenant.toml.");
    d.ferry(&["tenant", "create", "acme-dev", "--environment", "dev"])?;

    d.say("Validate: schema, references, cycles and secrets, every problem at once.");
    d.ferry(&["validate", "--tenant", "acme-dev"])?;

    d.say("Plan: what apply would do. Everything is new.");
    d.ferry(&["plan", "--tenant", "acme-dev"])?;

    d.say("Apply, in one transaction.");
    d.ferry(&["apply", "--tenant", "acme-dev", "--yes"])?;

    d.say("Plan again: content hashes decide, so nothing would change.");
    d.ferry(&["plan", "--tenant", "acme-dev"])?;

    d.say("Export the store and commit it: byte for byte the tree in git.");
    d.ferry(&[
        "export",
        "--tenant",
        "acme-dev",
        "--commit",
        "-m",
        "Import acme-dev",
    ])?;
    d.ferry(&["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"])?;

    d.say("Publish: staging becomes production, recorded and tagged in git.");
    d.ferry(&["publish", "--tenant", "acme-dev", "-m", "First release"])?;

    d.say("A pull request changes one line of support-bot's instructions.");
    let agent = repo.join("tenants/acme-dev/agents/support-bot.yaml");
    edit_instructions(&agent)?;
    d.commit_tenant("support-bot: answer in the customer's language")?;
    d.ferry(&["plan", "--tenant", "acme-dev", "--ref", "HEAD"])?;

    d.say("Merged: apply from git. The store records the commit.");
    d.ferry(&["apply", "--tenant", "acme-dev", "--ref", "HEAD", "--yes"])?;

    d.say("Staging against production, field by field.");
    d.ferry(&["diff", "--tenant", "acme-dev"])?;

    d.say("Publish the change, then look at the history.");
    d.ferry(&[
        "publish",
        "--tenant",
        "acme-dev",
        "-m",
        "Answer in the customer's language",
    ])?;
    d.ferry(&["publishes", "--tenant", "acme-dev"])?;

    revert_promote_zip_segment(&d, tmp.path())?;

    let base = serve_segment(&d)?;

    d.say("Done.");
    out.status(&format!(
        "The web UI of the demo's server was at {base}/ (sign in with an API token); `ferry serve` serves it"
    ));
    if keep {
        let kept = tmp.keep();
        out.status(&format!(
            "The demo repo is kept at {}",
            kept.join("acme-config").display()
        ));
    }
    Ok(EXIT_OK)
}

/// The acme-dev tree, embedded in the binary, copied into the demo repo.
fn copy_fixture(d: &Demo<'_>) -> Result<()> {
    d.say("The acme-dev tenant's tree: agents, tools, connections, knowledge bases, documents, workflows and evaluations as YAML.");
    let mut count = 0;
    for (rel, bytes) in ACME_FIXTURE {
        if let Some(rest) = rel.strip_prefix("tenants/") {
            let dest = d.repo.join("tenants").join(rest);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&dest, bytes)?;
            if rest.ends_with(".yaml") {
                count += 1;
            }
        }
    }
    d.out.status(&format!(
        "   copied {count} resource files into tenants/acme-dev/"
    ));

    Ok(())
}

/// A revert preview, a promotion to acme-staging, and a ZIP artifact into a sandbox tenant.
fn revert_promote_zip_segment(d: &Demo<'_>, work: &Path) -> Result<()> {
    d.say("Changed your mind? Preview taking the last publish back out of staging.");
    let store = crate::backend::store::open(crate::cli::repo::DEFAULT_STORE, &d.repo)?;
    let last = store
        .publishes("acme-dev")?
        .into_iter()
        .next()
        .context("the demo's publish is missing")?;
    d.ferry(&[
        "revert",
        "--tenant",
        "acme-dev",
        &last.change_track_id,
        "--preview",
    ])?;

    d.say("Promote what is syncable to acme-staging: dependencies come along, IDs are derived, secrets re-encrypted.");
    d.ferry(&[
        "tenant",
        "create",
        "acme-staging",
        "--environment",
        "staging",
    ])?;
    d.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--yes",
    ])?;
    d.say("Promote again: nothing changes.");
    d.ferry(&[
        "promote",
        "--from",
        "acme-dev",
        "--to",
        "acme-staging",
        "--dry-run",
    ])?;

    d.say("Ship support-bot as a ZIP artifact, and import it into a sandbox tenant.");
    let zip = work.join("support-bot.zip");
    let zip = zip.display().to_string();
    d.ferry(&[
        "zip",
        "export",
        "--tenant",
        "acme-dev",
        "--agent",
        "support-bot",
        "-o",
        &zip,
    ])?;
    d.ferry(&["tenant", "create", "acme-sandbox"])?;
    d.ferry(&[
        "zip",
        "import",
        &zip,
        "--tenant",
        "acme-sandbox",
        "--strategy",
        "create",
        "--yes",
    ])?;

    Ok(())
}

/// The demo's HTTP client: the server's address, the token, and the
/// server's request log, printed after each answer so it stays in order.
struct DemoApi<'a> {
    out: &'a Output,
    base: String,
    token: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl DemoApi<'_> {
    /// Send one request and print it as the curl line a user would type,
    /// then the status and the server's log line for it.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let value = demo_call(self.out, &self.base, &self.token, method, path, body)?;
        let lines: Vec<String> = self
            .log
            .lock()
            .map(|mut l| l.drain(..).collect())
            .unwrap_or_default();
        for l in lines {
            self.out.status(&format!("   server: {l}"));
        }
        Ok(value)
    }
}

/// Send one request to the demo server and print it as the curl line a user would type.
fn demo_call(
    out: &Output,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    use std::io::Read;
    let shown = body
        .as_ref()
        .map(|b| {
            let b = b.to_string();
            format!(" -d {}", shlex::try_quote(&b).unwrap_or(b.as_str().into()))
        })
        .unwrap_or_default();
    out.status(&format!(
        "$ curl -X {method} \"$BASE{path}\"{shown} -H \"Authorization: Bearer $TOKEN\""
    ));
    let req = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_bytes(&serde_json::to_vec(&b)?),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow!("demo request {method} {path}: {e}")),
    };
    let status = resp.status();
    let mut text = String::new();
    resp.into_reader().read_to_string(&mut text)?;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    out.status(&format!("   HTTP {status}"));
    Ok(value)
}

/// The HTTP API: a token, a staging edit, the staging diff, a publish, over a real server on loopback.
fn serve_segment(d: &Demo<'_>) -> Result<String> {
    d.say("Serve the store over HTTP: a user, a token, and the staging API on a loopback port.");
    d.ferry(&["user", "add", "demo"])?;
    let mut store = crate::backend::store::open(crate::cli::repo::DEFAULT_STORE, &d.repo)?;
    let demo = crate::service::access::Actor::named("demo");
    let token = crate::service::access::create_token(
        store.as_mut(),
        &demo,
        "demo",
        Some("acme-dev"),
        None,
    )?
    .token;
    d.out.status("$ ferry token create --user demo --tenant acme-dev   (printed once; the store keeps its hash)");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server_store = crate::backend::store::open(crate::cli::repo::DEFAULT_STORE, &d.repo)?;
    let serve = d.frontends.serve;
    let tagger = super::serve::repo_tagger(Some(&super::repo::Repo::load(&d.repo)?));
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    let request_log: crate::service::serving::RequestLog =
        std::sync::Arc::new(move |line: String| {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        });
    let server = std::thread::spawn(move || {
        serve(ServeRequest {
            store: server_store,
            readers: Vec::new(),
            config: ServerConfig::default(),
            tagger,
            addr: "127.0.0.1:0".into(),
            on_listen: Box::new(move |a| {
                let _ = addr_tx.send(a);
            }),
            shutdown: Some(Box::pin(async move {
                let _ = stop_rx.await;
            })),
            request_log: Some(request_log),
        })
    });
    let addr = addr_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .map_err(|_| anyhow!("the demo server did not start"))?;
    let api = DemoApi {
        out: d.out,
        base: format!("http://{addr}"),
        token,
        log,
    };
    d.out.status(&format!("$ ferry serve --addr {addr} &"));
    let steps = || -> Result<()> {
        let agents = api.call("GET", "/api/v2/agents", None)?;
        d.out.status(&format!(
            "   {} agents in acme-dev",
            agents["items"].as_array().map(Vec::len).unwrap_or(0)
        ));
        api.call(
            "PUT",
            "/api/v2/agents/support-bot",
            Some(serde_json::json!({"model": {"temperature": 0.3}})),
        )?;
        let diff = api.call("GET", "/api/v2/agents/support-bot/staging-diff", None)?;
        for r in diff["resources"].as_array().into_iter().flatten() {
            for c in r["changes"].as_array().into_iter().flatten() {
                d.out.status(&format!(
                    "   {} {}: {} -> {}",
                    r["name"].as_str().unwrap_or(""),
                    c["path"].as_str().unwrap_or(""),
                    c["production"],
                    c["staging"]
                ));
            }
        }
        let p = api.call(
            "POST",
            "/api/v2/agents/support-bot/publish",
            Some(serde_json::json!({"message": "Cooler answers"})),
        )?;
        d.out.status(&format!(
            "   published #{} ({})",
            p["number"],
            p["changeTrackId"].as_str().unwrap_or("")
        ));
        let again = api.call("POST", "/api/v2/agents/support-bot/publish", None)?;
        d.out.status(&format!(
            "   {} (hasChanges: {})",
            again["error"]["message"].as_str().unwrap_or(""),
            again["hasChanges"]
        ));
        Ok(())
    };
    let result = steps();
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| anyhow!("the demo server failed"))?
        .map_err(|e| anyhow!(e))?;
    result.map(|()| api.base)
}

fn edit_instructions(path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("instructions: |"))
        .context("support-bot has no instructions block")?;
    if let Some(l) = lines.get_mut(start + 1) {
        l.push_str(" Always answer in the customer's language.");
    }
    let mut new = lines.join("\n");
    new.push('\n');
    std::fs::write(path, new)?;
    Ok(())
}
