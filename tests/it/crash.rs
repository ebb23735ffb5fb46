//! The crash test (issue 14): `kill -9` of apply, publish, promote, ZIP
//! import and live sync at random points.
//!
//! Each operation is first run once to completion, which also measures how
//! long it takes; then, again and again, a change is made so that the
//! operation has work, the binary is started and killed with SIGKILL after
//! a delay drawn from a seeded RNG (up to 1.25 times that duration, so some
//! kills come before the store is opened and some after the process ended).
//! After each kill: the store opens, `plan` works, the operation run again
//! succeeds, the tenant is either as it was before the killed run or as the
//! completed run left it (revision, drafts, publishes, production; never a
//! state between), and every git tag belongs to a recorded publish.
//!
//! `FERRY_CRASH_KILLS` sets how many kills in all (default 100, twenty per
//! operation); `FERRY_CRASH_SEED` replays a run (the seed is printed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry::backend::store::Store;
use ferry::domain::publish::tag_name;
use ferry::domain::state::content_hash;

use crate::common::*;
use crate::serve::{acme_server_env, agent_id, sync_config, target_env};

const DEV: &str = "acme-dev";
const PROD: &str = "acme-prod";
const STAGING: &str = "acme-staging";

/// A small deterministic RNG (splitmix64): the kill points follow from the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay in `[0, limit]`.
    fn delay(&mut self, limit: Duration) -> Duration {
        let micros = limit.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % (micros + 1))
    }
}

/// How many kills each operation gets, and the seed of this run (printed).
fn settings() -> (usize, u64) {
    let total: usize = std::env::var("FERRY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("FERRY_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00C0_FFEE);
    (total.div_ceil(5).max(1), seed)
}

/// What a tenant holds, leaving out times: its revision, its drafts (ID,
/// content hash, draft revision), its publishes (number, change ID, tag)
/// and its production (ID, content hash).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    revision: u64,
    drafts: Vec<(String, String, u64)>,
    publishes: Vec<(u64, String, Option<String>)>,
    production: Vec<(String, String)>,
}

/// The tenant's snapshot, read through a freshly opened store (which shows that it opens).
fn snapshot(env: &TestEnv, tenant: &str) -> Snapshot {
    let store: Box<dyn Store + Send> = env.open_store();
    let (revision, index) = store.index(tenant).unwrap();
    let mut drafts: Vec<(String, String, u64)> = index
        .entries()
        .iter()
        .map(|e| (e.id.clone(), e.content_hash.clone(), e.revision))
        .collect();
    drafts.sort();
    let publishes = store
        .publishes(tenant)
        .unwrap()
        .into_iter()
        .map(|p| (p.number, p.change_track_id, p.tag))
        .collect();
    let mut production: Vec<(String, String)> = store
        .production(tenant)
        .unwrap()
        .iter()
        .map(|r| (r.id().unwrap_or_default().to_string(), content_hash(r)))
        .collect();
    production.sort();
    Snapshot {
        revision,
        drafts,
        publishes,
        production,
    }
}

/// Every git tag of the repo names a publish the store recorded.
fn no_stray_tags(env: &TestEnv, tenants: &[&str]) {
    if !env.path(".git").exists() {
        return;
    }
    let store = env.open_store();
    let mut recorded = Vec::new();
    for t in tenants {
        for p in store.publishes(t).unwrap() {
            recorded.push(tag_name(t, p.number));
        }
    }
    for tag in env.git(&["tag", "-l"]).lines() {
        assert!(
            recorded.iter().any(|r| r == tag),
            "stray tag {tag}: no recorded publish (recorded: {recorded:?})"
        );
    }
}

/// One operation under the crash test.
struct Op<'a> {
    /// Its name, for the report.
    name: &'static str,
    /// The repo it runs in.
    env: &'a TestEnv,
    /// The tenant it writes.
    tenant: &'static str,
    /// The `ferry` arguments.
    args: Vec<String>,
}

impl Op<'_> {
    fn command(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        c.current_dir(&self.env.repo)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .env_remove("FERRY_TEST_ABORT_AFTER_WRITES")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.env.store_env(&mut c);
        c
    }

    /// Run to completion; it must succeed, or find nothing left to do.
    fn complete(&self) -> Duration {
        let start = Instant::now();
        let out = self.command().output().unwrap();
        let took = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("nothing to publish"),
            "{} failed after a kill ({:?}): {stderr}",
            self.name,
            out.status
        );
        took
    }
}

/// What the kills of one operation came to.
#[derive(Debug, Default)]
struct Tally {
    /// Killed while running, the tenant as before.
    old: usize,
    /// Killed while running, after its transaction committed.
    new: usize,
    /// Ended before the kill came (not counted as a kill).
    finished: usize,
}

/// Kill `op` `kills` times, calling `prepare(i)` before each run so that it has work.
fn crash_loop(op: &Op, kills: usize, rng: &mut Rng, mut prepare: impl FnMut(usize)) -> Tally {
    // The first run sets up (and may do much more); the second measures.
    prepare(0);
    op.complete();
    prepare(1);
    let full = op.complete();
    // Kills are drawn up to a quarter past the measured run. A run that ends before its
    // kill shrinks the window, so a slow measuring run cannot waste the kills.
    let mut limit = full + full / 4;
    let mut tally = Tally::default();
    let mut i = 1;
    while tally.old + tally.new < kills {
        i += 1;
        assert!(
            i <= kills * 4 + 1,
            "{}: too few kills landed: {tally:?}",
            op.name
        );
        prepare(i);
        let before = snapshot(op.env, op.tenant);
        let delay = rng.delay(limit);
        let mut child = op.command().spawn().unwrap();
        std::thread::sleep(delay);
        let running = child.try_wait().unwrap().is_none();
        if running {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let after = snapshot(op.env, op.tenant);
        op.env
            .ferry(&[
                "--as", "root", "plan", "--tenant", op.tenant, "--output", "json",
            ])
            .ok();
        op.complete();
        let done = snapshot(op.env, op.tenant);
        assert_ne!(before, done, "{}: run {i} had nothing to do", op.name);
        assert!(
            after == before || after == done,
            "{} killed after {delay:?} left the tenant between states:\nbefore {before:?}\nafter {after:?}\ncompleted {done:?}",
            op.name
        );
        no_stray_tags(op.env, &[DEV, PROD, STAGING]);
        match (running, after == before) {
            (false, _) => {
                tally.finished += 1;
                limit = (limit * 3 / 4).max(Duration::from_millis(1));
            }
            (true, true) => tally.old += 1,
            (true, false) => tally.new += 1,
        }
    }
    eprintln!(
        "crash test: {} killed {} times ({} as before, {} committed; {} ended before the kill), delays up to {limit:?} at the end",
        op.name,
        tally.old + tally.new,
        tally.old,
        tally.new,
        tally.finished
    );
    tally
}

/// Change the first instruction line of a few agents, so an apply writes several rows.
fn edit_agents(env: &TestEnv, i: usize) {
    for agent in ["support-bot", "refund-bot", "billing-bot", "onboarding-bot"] {
        let rel = format!("tenants/{DEV}/agents/{agent}.yaml");
        let text = env.read(&rel);
        let start = text.find("instructions: |\n").unwrap() + "instructions: |\n".len();
        let end = start + text[start..].find('\n').unwrap();
        let line = text[start..end].split(" (run ").next().unwrap().to_string();
        env.write(
            &rel,
            &format!("{}{line} (run {i}){}", &text[..start], &text[end..]),
        );
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Apply, publish, promote and ZIP import on one acme repo with git.
fn local_operations(kills: usize, rng: &mut Rng) -> usize {
    let env = TestEnv::acme();
    for (t, environment) in [(PROD, "prod"), (STAGING, "staging")] {
        env.ferry(&["tenant", "create", t, "--environment", environment])
            .ok();
    }
    env.git(&["init", "-q"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "fixture"]);
    let apply = Op {
        name: "apply",
        env: &env,
        tenant: DEV,
        args: args(&["apply", "--tenant", DEV, "--yes"]),
    };
    let mut killed = 0;
    let t = crash_loop(&apply, kills, rng, |i| edit_agents(&env, i));
    killed += t.old + t.new;

    let publish = Op {
        name: "publish",
        env: &env,
        tenant: DEV,
        args: args(&["publish", "--tenant", DEV, "-m", "crash test"]),
    };
    let t = crash_loop(&publish, kills, rng, |i| {
        edit_agents(&env, 1000 + i);
        env.git(&["commit", "-q", "-am", &format!("publish {i}")]);
        env.ferry(&["apply", "--tenant", DEV, "--yes"]).ok();
    });
    killed += t.old + t.new;
    assert!(
        !env.git(&["tag", "-l"]).trim().is_empty(),
        "publishes of a committed tree are tagged"
    );

    let promote = Op {
        name: "promote",
        env: &env,
        tenant: PROD,
        // The fixture's chain is dev → staging → prod: straight to prod goes against it.
        args: args(&[
            "promote",
            "--from",
            DEV,
            "--to",
            PROD,
            "--against-chain",
            "--yes",
        ]),
    };
    let t = crash_loop(&promote, kills, rng, |i| {
        edit_agents(&env, 2000 + i);
        env.ferry(&["apply", "--tenant", DEV, "--yes"]).ok();
    });
    killed += t.old + t.new;

    let zip = env.tmp.path().join("support-bot.zip");
    let zip_text = zip.display().to_string();
    let import = Op {
        name: "zip import",
        env: &env,
        tenant: STAGING,
        args: args(&[
            "zip",
            "import",
            &zip_text,
            "--tenant",
            STAGING,
            "--strategy",
            "merge",
            "--yes",
        ]),
    };
    let t = crash_loop(&import, kills, rng, |i| {
        edit_agents(&env, 3000 + i);
        env.ferry(&["apply", "--tenant", DEV, "--yes"]).ok();
        env.ferry(&[
            "zip",
            "export",
            "--tenant",
            DEV,
            "--agent",
            "support-bot",
            "--out",
            &zip_text,
        ])
        .ok();
    });
    killed + t.old + t.new
}

/// Live sync from a source server into a second repo's acme-prod.
fn live_sync(kills: usize, rng: &mut Rng) -> usize {
    let (src_env, src_token) = acme_server_env();
    let source = Server::start(&src_env, &[]);
    let (dst_env, _) = target_env();
    let id = agent_id(&source, &src_token, "support-bot");
    let config = sync_config(&dst_env, &[&source.base]);
    let sync = Op {
        name: "live sync",
        env: &dst_env,
        tenant: PROD,
        args: args(&[
            "--as",
            "root",
            "sync",
            "--tenant",
            PROD,
            "--source-url",
            &source.base,
            "--source-token",
            &src_token,
            "--agent",
            &id,
            "--config",
            &config,
        ]),
    };
    let t = crash_loop(&sync, kills, rng, |i| {
        http_json(
            "PUT",
            &source.url(&format!("/api/v2/agents/{id}")),
            Some(&src_token),
            &serde_json::json!({"description": format!("changed at the source, run {i}")}),
        )
        .expect(200);
    });
    t.old + t.new
}

#[test]
fn kill_9_at_random_points_leaves_every_store_whole() {
    let (kills, seed) = settings();
    eprintln!("crash test: seed {seed} (FERRY_CRASH_SEED), {kills} kills per operation");
    let mut rng = Rng(seed);
    let survived = local_operations(kills, &mut rng) + live_sync(kills, &mut rng);
    eprintln!("crash test: {survived} kills survived");
    assert!(survived >= kills * 5);
}
