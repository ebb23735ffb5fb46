//! The database goes away under `ferry serve`, and comes back.
//!
//! The test starts a PostgreSQL cluster of its own in a temp folder (with
//! `initdb` and `pg_ctl` from `FERRY_TEST_POSTGRES_BIN`, as `.ci/postgres.sh`
//! exports it), never the shared test cluster, so it may stop it. It stops
//! the cluster while a staging edit waits on the tenant's row lock, and
//! checks that the server answers 503 with the error shape, keeps running,
//! answers 503 while the database is down, and serves again (reads and
//! writes) once the cluster is back on the same port.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A throwaway PostgreSQL cluster this test owns: it may stop and start it.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    user: String,
}

/// Whether commands must run as the `postgres` user (PostgreSQL refuses to run as root).
fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// initdb and start a cluster, or `None` when the PostgreSQL tests are skipped.
    fn start() -> Option<Cluster> {
        crate::postgres::base_url()?;
        let bin = std::env::var("FERRY_TEST_POSTGRES_BIN")
            .map(PathBuf::from)
            .expect("FERRY_TEST_POSTGRES_BIN names the folder of initdb and pg_ctl (.ci/postgres.sh exports it)");
        let dir = tempfile::tempdir().unwrap();
        let user = if as_root() {
            let ok = Command::new("chown")
                .args(["postgres", dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown to postgres");
            "postgres".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "postgres".into())
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            user,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                &cluster.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        cluster.resume();
        let mut c = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).unwrap();
        c.batch_execute("CREATE DATABASE ferry").unwrap();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{db}", self.user, self.port)
    }

    /// Run a PostgreSQL program as the cluster's owner; panics unless it succeeds.
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut c = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start (again) on the same port.
    fn resume(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        );
    }

    /// Stop: every session is ended, open transactions are rolled back.
    fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let pg_ctl = self.bin.join("pg_ctl");
        let mut c = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let _ = c
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// An answer of 503 in the error shape, naming the database and saying what to do.
fn assert_unavailable(a: &Answer, what: &str) {
    let body = a.expect(503);
    assert_eq!(body["error"]["code"], "store_unavailable", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the store database is unavailable"),
        "{what}: {body}"
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("try again")),
        "{what}: {body}"
    );
}

/// Block until a session of the `ferry` database waits for a lock.
fn wait_for_a_lock_waiter(url: &str) {
    let mut watcher = postgres::Client::connect(url, postgres::NoTls).unwrap();
    for _ in 0..600 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = 'ferry' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the staging edit never waited for the tenant's lock");
}

#[test]
fn the_database_stopping_mid_request_is_a_503_and_the_server_recovers() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let store = cluster.url("ferry");
    let env = TestEnv::acme_on(&store);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some("acme-dev"));
    let mut server = Server::start(&env, &[]);
    let bot = server.url("/api/v2/agents/support-bot");
    let t = Some(token.as_str());
    http("GET", &bot, t, &[], None).expect(200);

    // Hold the tenant's row lock, so the next edit waits inside its transaction.
    let mut holder = postgres::Client::connect(&store, postgres::NoTls).unwrap();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM tenants WHERE name = 'acme-dev' FOR UPDATE")
        .unwrap();
    let edit = {
        let (bot, token) = (bot.clone(), token.clone());
        std::thread::spawn(move || {
            http_json(
                "PUT",
                &bot,
                Some(&token),
                &serde_json::json!({"description": "written while the database went away"}),
            )
        })
    };
    wait_for_a_lock_waiter(&store);
    cluster.stop();
    drop(holder);
    assert_unavailable(&edit.join().unwrap(), "the edit in flight");

    // While it is down: every request is a 503, and the server keeps running.
    assert_unavailable(&http("GET", &bot, t, &[], None), "a read");
    assert_unavailable(
        &http("GET", &server.url("/health"), None, &[], None),
        "the health check",
    );
    assert_unavailable(
        &http_json("PUT", &bot, t, &serde_json::json!({"description": "x"})),
        "a write",
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );

    // Back on the same port: the server reconnects by itself.
    cluster.resume();
    let mut answer = http("GET", &bot, t, &[], None);
    for _ in 0..120 {
        if answer.status == 200 {
            break;
        }
        assert_unavailable(&answer, "a read while reconnecting");
        std::thread::sleep(Duration::from_millis(250));
        answer = http("GET", &bot, t, &[], None);
    }
    let agent = answer.expect(200);
    assert_ne!(
        agent["spec"]["description"], "written while the database went away",
        "the edit that failed left nothing behind"
    );
    // Each pooled connection finds the database gone on its first use after
    // the restart and reconnects: that first use may still answer 503.
    let recovered = |ask: &dyn Fn() -> Answer, what: &str| {
        let mut a = ask();
        for _ in 0..20 {
            if a.status != 503 {
                break;
            }
            assert_unavailable(&a, what);
            std::thread::sleep(Duration::from_millis(100));
            a = ask();
        }
        a
    };
    let put_back = || {
        http_json(
            "PUT",
            &bot,
            t,
            &serde_json::json!({"description": "written after the database came back"}),
        )
    };
    recovered(&put_back, "a write after the restart").expect(200);
    let agent = recovered(&|| http("GET", &bot, t, &[], None), "a read").expect(200);
    let health = || http("GET", &server.url("/health"), None, &[], None);
    recovered(&health, "the health check").expect(200);
    assert_eq!(
        agent["spec"]["description"],
        "written after the database came back"
    );
    assert_eq!(server.stop(), Some(0), "{}", server.log());
}
