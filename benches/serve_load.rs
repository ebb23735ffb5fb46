//! Load benchmark of `ferry serve`: 32 concurrent clients for 60 seconds.
//!
//! Run with `cargo bench --bench serve_load` (add `-- SECONDS CLIENTS` to
//! change the defaults). It starts the release binary on a loopback port
//! over a copy of `fixtures/acme`, then the clients mix, on tenant acme-dev:
//! staging edits of support-bot (each client its own guardrail), staging
//! diffs, edits and publishes of billing-bot, rollbacks of those publishes;
//! and tenant syncs from acme-dev into acme-staging. Afterwards it checks
//! that no response was a 5xx, that every accepted edit is in the final
//! state and every accepted publish is in the history, and prints requests
//! per second and latency percentiles (also written to
//! `target/serve-load.md`).
//!
//! A third argument picks the setup: `diff` (every client only reads
//! staging diffs), `postgres` (two `ferry serve` instances on one PostgreSQL
//! database, the clients spread over both) or `both` (the single SQLite
//! instance, then the two PostgreSQL instances, in one run). PostgreSQL
//! comes from `FERRY_TEST_POSTGRES_URL` (a new database is made there and
//! dropped after), else `.ci/postgres.sh` starts a throwaway cluster.
//!
//! `wrk`, `wrk-postgres` and `wrk-both` measure the read-only target with a
//! load generator in its own process, `wrk` (Debian's package of that name):
//! CLIENTS connections GET support-bot's staging diff for SECONDS, against
//! one SQLite instance, two PostgreSQL instances (half the connections on
//! each), or both in turn. The report (also `target/serve-wrk.md`) gives
//! requests per second, p50 and p99, and fails on any non-2xx answer or
//! socket error.
//!
//! Run as root, the PostgreSQL setups switch the kernel's session groups
//! off for their duration (`kernel.sched_autogroup_enabled`, put back
//! after; see [`SessionGroupsOff`] for what they cost here), and every
//! report says which way the setting stood.
//!
//! `cargo bench --bench serve_load -- ui [N]` times the web UI instead: one
//! browser-like client signs in with a token, then GETs each page N times
//! (default 20) on the fixtures/acme store (acme-dev applied, published
//! once, one staging edit), and prints the median and the maximum per page
//! (also written to `target/ui-pages.md`). The issue's target is no page
//! over 500 ms.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{copy_dir, ferry_bin};

fn ferry(bin: &Path, repo: &Path, store: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::new(bin);
    c.args(args).current_dir(repo).env("NO_COLOR", "1");
    match store {
        Some(url) => c.env("FERRY_STORE", url),
        None => c.env_remove("FERRY_STORE"),
    };
    let out = c.output().expect("ferry");
    assert!(
        out.status.success(),
        "ferry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Reply {
    status: u16,
    body: Value,
}

fn call(agent: &ureq::Agent, method: &str, url: &str, token: &str, body: Option<&Value>) -> Reply {
    let req = agent
        .request(method, url)
        .set("Authorization", &format!("Bearer {token}"));
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_bytes(&serde_json::to_vec(b).unwrap_or_default()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => {
            return Reply {
                status: 0,
                body: json!({"transport": e.to_string()}),
            }
        }
    };
    let status = resp.status();
    let mut s = String::new();
    let _ = resp.into_reader().read_to_string(&mut s);
    Reply {
        status,
        body: serde_json::from_str(&s).unwrap_or(Value::Null),
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<(String, Duration, u16)>,
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Error codes of the answers that were not 2xx.
    codes: std::collections::BTreeMap<String, u64>,
    /// Per support-bot client: the last accepted guardrail value.
    last_edit: Vec<(String, u64)>,
    /// Accepted publishes.
    publishes: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What one run does: how long, how many clients, which requests.
#[derive(Clone, Copy)]
struct Load {
    seconds: u64,
    clients: usize,
    /// Every client only reads the staging diff (the read-only target).
    diff_only: bool,
}

/// What one run found.
struct Outcome {
    report: String,
    server_errors: u64,
    lost: usize,
    missing: usize,
}

/// A throwaway PostgreSQL database for the two-instance mode, dropped at the
/// end (with the cluster, when this bench started one).
struct Database {
    url: String,
    admin: String,
    name: String,
    cluster_state: Option<PathBuf>,
}

fn postgres_script(command: &str, state: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/postgres.sh"))
        .arg(command)
        .env("FERRY_PG_STATE", state);
    c
}

impl Database {
    /// A new database on `FERRY_TEST_POSTGRES_URL`'s server, or on a cluster
    /// started with `.ci/postgres.sh` when that variable is not set.
    fn create() -> Database {
        let (admin, cluster_state) = match std::env::var("FERRY_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let state =
                    std::env::temp_dir().join(format!("ferry-bench-pg-{}", std::process::id()));
                let out = postgres_script("start", &state)
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run .ci/postgres.sh start");
                assert!(out.status.success(), ".ci/postgres.sh start failed");
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let url = text
                    .lines()
                    .find_map(|l| l.strip_prefix("export FERRY_TEST_POSTGRES_URL='"))
                    .and_then(|l| l.strip_suffix('\''))
                    .expect("the cluster's URL")
                    .to_string();
                (url, Some(state))
            }
        };
        let name = format!("ferry_load_{}", std::process::id());
        let mut c =
            postgres::Client::connect(&admin, postgres::NoTls).expect("connect to PostgreSQL");
        // One statement each: neither may run inside a transaction block.
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .expect("drop a leftover bench database");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the bench database");
        let mut u = url::Url::parse(&admin).expect("a URL");
        u.set_path(&format!("/{name}"));
        Database {
            url: u.to_string(),
            admin,
            name,
            cluster_state,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
        if let Some(state) = &self.cluster_state {
            let _ = postgres_script("stop", state).status();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if args.first().map(String::as_str) == Some("ui") {
        let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
        ui_pages(&ferry_bin(), n);
        return;
    }
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(60);
    let clients: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    // `diff`: read-only; `postgres`: two instances on one PostgreSQL database;
    // `both`: the single SQLite instance, then the two PostgreSQL instances.
    let mode = args.get(2).map(String::as_str).unwrap_or("sqlite");
    let load = Load {
        seconds,
        clients,
        diff_only: mode == "diff",
    };
    let bin = ferry_bin();
    if mode.starts_with("wrk") {
        let mut reports = Vec::new();
        if mode != "wrk-postgres" {
            reports.push(wrk_diff(&bin, None, 1, load));
        }
        if mode != "wrk" {
            let db = Database::create();
            let groups = SessionGroupsOff::new();
            let (report, errors) = wrk_diff(&bin, Some(&db.url), 2, load);
            reports.push((format!("{report}\n{}\n", groups.describe()), errors));
        }
        let text: Vec<&str> = reports.iter().map(|(r, _)| r.as_str()).collect();
        println!("{}", text.join("\n"));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let _ = std::fs::write(root.join("target/serve-wrk.md"), text.join("\n"));
        assert!(reports.iter().all(|(_, e)| *e == 0), "errors under wrk");
        return;
    }
    let mut outcomes = Vec::new();
    if mode != "postgres" {
        outcomes.push(run_load(&bin, None, 1, load));
        println!("{}", outcomes[outcomes.len() - 1].report);
    }
    if mode == "postgres" || mode == "both" {
        let db = Database::create();
        let groups = SessionGroupsOff::new();
        let mut outcome = run_load(&bin, Some(&db.url), 2, load);
        outcome.report = format!("{}\n{}\n", outcome.report, groups.describe());
        println!("{}", outcome.report);
        outcomes.push(outcome);
    }
    let report = outcomes
        .iter()
        .map(|o| o.report.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::write(root.join("target/serve-load.md"), &report);
    for o in &outcomes {
        assert_eq!(o.server_errors, 0, "5xx responses under load");
        assert_eq!(o.lost, 0, "lost updates under load");
        assert_eq!(o.missing, 0, "publishes missing from the history");
    }
}

/// Start `ferry serve` on a loopback port over `store` (the repo's own when `None`).
fn start_server(bin: &Path, repo: &Path, store: Option<&str>) -> (std::process::Child, String) {
    let mut c = Command::new(bin);
    c.args(["serve", "--addr", "127.0.0.1:0"])
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match store {
        Some(url) => c.env("FERRY_STORE", url),
        None => c.env_remove("FERRY_STORE"),
    };
    let mut child = c.spawn().expect("serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(a) = line.strip_prefix("ferry: listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server start");
    (child, base)
}

/// `fixtures/acme` applied as acme-dev (acme-staging empty), a root token
/// for acme-dev, and `instances` servers started over it.
struct Served {
    tmp: tempfile::TempDir,
    servers: Vec<(std::process::Child, String)>,
    bases: Vec<String>,
    token: String,
}

fn serve_acme(bin: &Path, store: Option<&str>, instances: usize) -> Served {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/acme"),
        &repo,
    );
    let ferry = |args: &[&str]| ferry(bin, &repo, store, args);
    ferry(&["tenant", "create", "acme-dev"]);
    ferry(&["apply", "--tenant", "acme-dev", "--yes"]);
    ferry(&["tenant", "create", "acme-staging"]);
    ferry(&["--as", "root", "user", "add", "root"]);
    let token = ferry(&[
        "--as", "root", "token", "create", "--user", "root", "--tenant", "acme-dev",
    ]);
    let servers: Vec<(std::process::Child, String)> = (0..instances)
        .map(|_| start_server(bin, &repo, store))
        .collect();
    let bases = servers.iter().map(|(_, b)| b.clone()).collect();
    Served {
        tmp,
        servers,
        bases,
        token,
    }
}

fn stop_servers(servers: Vec<(std::process::Child, String)>) {
    for (mut child, _) in servers {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
}

/// The kernel's session groups (`kernel.sched_autogroup_enabled`) switched
/// off for a PostgreSQL run, and back on after it, when this process may
/// (root). With them on, the kernel shares the CPUs between sessions first:
/// the PostgreSQL cluster is a session of its own (pg_ctl starts it so), and
/// the servers and the load generator are another. On these 2 cores `perf
/// sched latency` measured a runnable PostgreSQL backend waiting 9.0 s for a
/// CPU (every other task: at most 13 ms), and every request on that
/// connection, on both instances, waited with it: wrk's timeouts. With them
/// off, the same run had none and its slowest request took 36 ms. A
/// database server on its own machine, or under systemd (which groups by
/// service, not by session), is not scheduled this way.
struct SessionGroupsOff {
    /// The setting before, when this run changed it.
    before: Option<String>,
    /// The setting during the run, as read back.
    during: String,
}

impl SessionGroupsOff {
    const SETTING: &'static str = "/proc/sys/kernel/sched_autogroup_enabled";

    fn new() -> SessionGroupsOff {
        let read = || {
            std::fs::read_to_string(Self::SETTING)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "absent".to_string())
        };
        let now = read();
        let before = (now == "1" && std::fs::write(Self::SETTING, "0").is_ok()).then_some(now);
        SessionGroupsOff {
            before,
            during: read(),
        }
    }

    fn describe(&self) -> String {
        match &self.before {
            Some(before) => format!(
                "kernel.sched_autogroup_enabled: {} for this run ({before} before, put back after)",
                self.during
            ),
            None => format!(
                "kernel.sched_autogroup_enabled: {} (left as it was; 1 lets the kernel starve a PostgreSQL backend on a small machine)",
                self.during
            ),
        }
    }
}

impl Drop for SessionGroupsOff {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            let _ = std::fs::write(Self::SETTING, before);
        }
    }
}

/// The read-only target measured by `wrk`, a load generator in its own
/// process (Debian's package `wrk`): `clients` connections on 2 threads GET
/// the staging diff of support-bot for `seconds`, spread over the
/// `instances` servers. Returns the report and the count of errors (non-2xx
/// answers and socket errors).
fn wrk_diff(bin: &Path, store: Option<&str>, instances: usize, load: Load) -> (String, u64) {
    let served = serve_acme(bin, store, instances);
    let per = load.clients.div_ceil(instances);
    let runs: Vec<std::process::Child> = served
        .bases
        .iter()
        .map(|base| {
            Command::new("wrk")
                .args(["-t", if instances > 1 { "1" } else { "2" }])
                .args(["-c", &per.to_string()])
                .args(["-d", &format!("{}s", load.seconds)])
                .arg("--latency")
                .args(["-H", &format!("Authorization: Bearer {}", served.token)])
                .arg(format!("{base}/api/v2/agents/support-bot/staging-diff"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("wrk is not installed: apt-get install wrk")
        })
        .collect();
    let outputs: Vec<String> = runs
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().expect("wrk").stdout).into_owned())
        .collect();
    stop_servers(served.servers);
    let setup = match store {
        Some(_) => format!("{instances} instances on one PostgreSQL database"),
        None => "one instance on SQLite".to_string(),
    };
    let mut rps = 0.0;
    let mut errors = 0;
    let mut p99 = Vec::new();
    let mut p50 = Vec::new();
    for out in &outputs {
        for line in out.lines().map(str::trim) {
            let field = |prefix: &str| line.strip_prefix(prefix).map(str::trim);
            if let Some(v) = field("Requests/sec:") {
                rps += v.parse::<f64>().unwrap_or(0.0);
            } else if let Some(v) = field("99%") {
                p99.push(v.to_string());
            } else if let Some(v) = field("50%") {
                p50.push(v.to_string());
            } else if let Some(v) = field("Non-2xx or 3xx responses:") {
                errors += v.parse::<u64>().unwrap_or(1);
            } else if line.starts_with("Socket errors:") {
                let n: u64 = line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum();
                errors += n;
            }
        }
    }
    let report = format!(
        "staging diffs under wrk ({setup}): {} connections for {} s: {rps:.0} requests per second, p50 {}, p99 {}, errors {errors}\n\n```\n{}```\n",
        load.clients,
        load.seconds,
        p50.join(" / "),
        p99.join(" / "),
        outputs.join("\n")
    );
    (report, errors)
}

/// One run: `instances` servers on `store` (the repo's SQLite file when
/// `None`), the clients spread over them round-robin.
fn run_load(bin: &Path, store: Option<&str>, instances: usize, load: Load) -> Outcome {
    let Load {
        seconds,
        clients,
        diff_only,
    } = load;
    let Served {
        tmp: _tmp,
        servers,
        bases,
        token,
    } = serve_acme(bin, store, instances);
    let base = bases[0].clone();
    let agent = ureq::AgentBuilder::new()
        .max_idle_connections_per_host(64)
        .build();
    // A first publish of billing-bot, so rollbacks have something to take back.
    call(
        &agent,
        "PUT",
        &format!("{base}/api/v2/agents/billing-bot"),
        &token,
        Some(&json!({"description": "v0"})),
    );
    let first = call(
        &agent,
        "POST",
        &format!("{base}/api/v2/agents/billing-bot/publish"),
        &token,
        Some(&json!({})),
    );
    let mut initial_publishes = vec![];
    if let Some(c) = first.body["changeTrackId"].as_str() {
        initial_publishes.push(c.to_string());
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let recent: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(initial_publishes.clone()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let (base, token, agent, tally, recent) = (
            bases[c % bases.len()].clone(),
            token.clone(),
            agent.clone(),
            tally.clone(),
            recent.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut local: Vec<(String, Duration, u16)> = Vec::new();
            let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
            let mut codes: std::collections::BTreeMap<String, u64> = Default::default();
            let mut last: Option<(String, u64)> = None;
            let mut published = Vec::new();
            let mut n: u64 = 0;
            let steps = ["documents", "connections", "knowledgeBases", "tools", "workflows", "agents", "evaluations"];
            while Instant::now() < deadline {
                n += 1;
                let mix = if diff_only { (0, 0) } else { (c % 4, n % 3) };
                let (op, method, url, body): (&str, &str, String, Option<Value>) = match mix {
                    (0, 0) => ("staging-diff", "GET", format!("{base}/api/v2/agents/support-bot/staging-diff"), None),
                    (0, _) => (
                        "edit",
                        "PATCH",
                        format!("{base}/api/v2/agents/support-bot/guardrails"),
                        Some(json!([{"name": format!("load-{c}"), "enabled": true, "config": {"seq": n}}])),
                    ),
                    (1, 0) => ("publish", "POST", format!("{base}/api/v2/agents/billing-bot/publish"), Some(json!({"message": format!("load {c}/{n}")}))),
                    (1, _) => ("edit", "PUT", format!("{base}/api/v2/agents/billing-bot"), Some(json!({"description": format!("edit {c}/{n}")}))),
                    (2, 0) => {
                        let change = recent.lock().expect("lock").last().cloned().unwrap_or_default();
                        ("rollback", "PUT", format!("{base}/api/v2/agents/billing-bot/rollback"), Some(json!({"changeTrackId": change})))
                    }
                    (2, _) => ("staging-diff", "GET", format!("{base}/api/v2/agents/billing-bot/staging-diff"), None),
                    _ => (
                        "tenant-sync",
                        "POST",
                        format!("{base}/api/tenant/sync/acme-staging/{}", steps[(n as usize) % steps.len()]),
                        None,
                    ),
                };
                let t = Instant::now();
                let r = call(&agent, method, &url, &token, body.as_ref());
                local.push((op.to_string(), t.elapsed(), r.status));
                *statuses.entry(r.status).or_default() += 1;
                if let Some(code) = r.body["error"]["code"].as_str() {
                    let key = format!("{op}: {code}");
                    if !codes.contains_key(&key) && std::env::var_os("FERRY_LOAD_VERBOSE").is_some() {
                        eprintln!("{key}: {}", r.body["error"]["message"]);
                    }
                    *codes.entry(key).or_default() += 1;
                }
                if r.status == 200 {
                    if c % 4 == 0 && op == "edit" {
                        last = Some((format!("load-{c}"), n));
                    }
                    if op == "publish" {
                        if let Some(id) = r.body["changeTrackId"].as_str() {
                            published.push(id.to_string());
                            recent.lock().expect("lock").push(id.to_string());
                        }
                    }
                }
            }
            let mut t = tally.lock().expect("lock");
            t.latencies.extend(local);
            for (k, v) in statuses {
                *t.statuses.entry(k).or_default() += v;
            }
            for (k, v) in codes {
                *t.codes.entry(k).or_default() += v;
            }
            t.last_edit.extend(last);
            t.publishes.extend(published);
        }));
    }
    for h in handles {
        h.join().expect("client");
    }
    let elapsed = started.elapsed();

    // Checks: no 5xx, no lost update, every publish in the history.
    let t = tally.lock().expect("lock");
    let server_errors: u64 = t
        .statuses
        .iter()
        .filter(|(s, _)| **s >= 500 || **s == 0)
        .map(|(_, n)| n)
        .sum();
    let a = call(
        &agent,
        "GET",
        &format!("{base}/api/v2/agents/support-bot"),
        &token,
        None,
    );
    let guardrails = a.body["spec"]["guardrails"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut lost = 0;
    for (name, seq) in &t.last_edit {
        let found = guardrails.iter().find(|g| g["name"] == name.as_str());
        if found.map(|g| g["config"]["seq"].as_u64()) != Some(Some(*seq)) {
            lost += 1;
        }
    }
    let h = call(
        &agent,
        "GET",
        &format!("{base}/api/v2/agents/billing-bot/publishes"),
        &token,
        None,
    );
    let history: Vec<String> = h.body["items"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|p| p["changeTrackId"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let missing = t.publishes.iter().filter(|p| !history.contains(p)).count();
    stop_servers(servers);

    let mut all: Vec<Duration> = t.latencies.iter().map(|(_, d, _)| *d).collect();
    all.sort();
    let total = all.len();
    let rps = total as f64 / elapsed.as_secs_f64();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let mut report = String::new();
    let setup = match store {
        Some(_) => format!("{instances} instances on one PostgreSQL database"),
        None => "one instance on SQLite".to_string(),
    };
    report.push_str(&format!(
        "ferry serve under load ({setup}): {clients} clients for {:.0} s on {} cores\n\n",
        elapsed.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));
    report.push_str(&format!(
        "- requests: {total} ({rps:.0} per second); statuses: {:?}\n",
        t.statuses
    ));
    report.push_str(&format!(
        "- 5xx or transport errors: {server_errors}; lost updates: {lost} of {}; publishes missing from the history: {missing} of {}\n\n",
        t.last_edit.len(),
        t.publishes.len()
    ));
    report.push_str("| operation | requests | 2xx | 4xx | p50 ms | p95 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut ops: Vec<&str> = t.latencies.iter().map(|(o, _, _)| o.as_str()).collect();
    ops.sort();
    ops.dedup();
    for op in ops.iter().copied().chain(std::iter::once("all")) {
        let rows: Vec<&(String, Duration, u16)> = t
            .latencies
            .iter()
            .filter(|(o, _, _)| op == "all" || o == op)
            .collect();
        let ok = rows
            .iter()
            .filter(|(_, _, s)| (200..300).contains(s))
            .count();
        let client = rows
            .iter()
            .filter(|(_, _, s)| (400..500).contains(s))
            .count();
        let mut v: Vec<Duration> = rows.iter().map(|(_, d, _)| *d).collect();
        v.sort();
        report.push_str(&format!(
            "| {op} | {} | {ok} | {client} | {} | {} | {} | {} |\n",
            v.len(),
            ms(percentile(&v, 0.5)),
            ms(percentile(&v, 0.95)),
            ms(percentile(&v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        ));
    }
    report.push_str("\nAnswers that were not 2xx, by operation and error code (expected refusals, not failures):\n\n");
    for (k, v) in &t.codes {
        report.push_str(&format!("- {k}: {v}\n"));
    }
    Outcome {
        report,
        server_errors,
        lost,
        missing,
    }
}

/// A GET of a UI page with the session cookie: status, body and time taken.
fn page(agent: &ureq::Agent, url: &str, cookie: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let res = agent.get(url).set("Cookie", cookie).call();
    let (status, body) = match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            (status, r.into_string().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    };
    (status, body, t.elapsed())
}

/// The `ui` mode: each web UI page GET `n` times by one signed-in client.
fn ui_pages(bin: &Path, n: usize) {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/acme"),
        &repo,
    );
    let ferry = |args: &[&str]| ferry(bin, &repo, None, args);
    ferry(&["tenant", "create", "acme-dev"]);
    ferry(&["apply", "--tenant", "acme-dev", "--yes"]);
    ferry(&["tenant", "create", "acme-staging"]);
    ferry(&["--as", "root", "user", "add", "root"]);
    ferry(&[
        "--as", "root", "publish", "--tenant", "acme-dev", "-m", "first",
    ]);
    let token = ferry(&[
        "--as", "root", "token", "create", "--user", "root", "--tenant", "acme-dev",
    ]);
    let (mut child, base) = start_server(bin, &repo, None);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    call(
        &agent,
        "PUT",
        &format!("{base}/api/v2/agents/support-bot"),
        &token,
        Some(&json!({"instructions": "Be brief.\nCite the policy.\n"})),
    );
    let signed = agent
        .post(&format!("{base}/sign-in"))
        .send_form(&[("token", token.as_str())])
        .expect("sign in");
    let cookie = signed
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, history, _) = page(&agent, &format!("{base}/t/acme-dev/history"), &cookie);
    let change = history
        .split("/t/acme-dev/history/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a publish in the history")
        .to_string();
    let pages = [
        ("tenants", "/".to_string()),
        ("resources", "/t/acme-dev".to_string()),
        ("resources, searched", "/t/acme-dev?q=bot".to_string()),
        ("agent editor", "/t/acme-dev/agents/support-bot".to_string()),
        (
            "staging diff",
            "/t/acme-dev/agents/support-bot/diff".to_string(),
        ),
        ("history", "/t/acme-dev/history".to_string()),
        ("revert preview", format!("/t/acme-dev/history/{change}")),
        ("sync panel", "/t/acme-dev/sync".to_string()),
        (
            "sync preview",
            "/t/acme-dev/sync?target=acme-staging".to_string(),
        ),
        (
            "export tree",
            "/t/acme-dev/agents/support-bot/export".to_string(),
        ),
        ("import form", "/t/acme-dev/import".to_string()),
        ("live sync form", "/t/acme-dev/live-sync".to_string()),
    ];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut report = format!(
        "web UI pages on fixtures/acme, one client, {n} GETs each, release build, {} cores\n\n| page | median ms | max ms |\n|---|---:|---:|\n",
        std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1)
    );
    let mut worst = Duration::ZERO;
    for (name, path) in &pages {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let (status, body, took) = page(&agent, &format!("{base}{path}"), &cookie);
            assert_eq!(status, 200, "{path}: {body}");
            times.push(took);
        }
        times.sort();
        let max = times.last().copied().unwrap_or_default();
        worst = worst.max(max);
        report.push_str(&format!(
            "| {name} | {:.1} | {:.1} |\n",
            ms(percentile(&times, 0.5)),
            ms(max)
        ));
    }
    report.push_str(&format!(
        "\nslowest single answer: {:.1} ms; no page over 500 ms: {}\n",
        ms(worst),
        if worst < Duration::from_millis(500) {
            "met"
        } else {
            "NOT met"
        }
    ));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!("{report}");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::write(root.join("target/ui-pages.md"), &report);
}
