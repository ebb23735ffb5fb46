//! The test environment: a temporary config repo and the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panic with the output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panic unless the run succeeded.
    pub fn ok(self) -> Self {
        self.expect(0)
    }
}

/// A temporary folder holding a config repo.
pub struct TestEnv {
    /// Keeps the folder alive.
    pub tmp: tempfile::TempDir,
    /// The config repo.
    pub repo: PathBuf,
    /// The store every command uses (`FERRY_STORE`), when not the repo's default SQLite file.
    pub store: Option<String>,
    /// Keeps that store alive (a throwaway database).
    _store_guard: Option<Box<dyn std::any::Any>>,
}

/// Where the stores of the test envs made on this thread live: `None` for the repo's SQLite file.
type StoreFactory = fn() -> Option<crate::postgres::Database>;

thread_local! {
    static TEST_STORE: std::cell::Cell<Option<StoreFactory>> = const { std::cell::Cell::new(None) };
}

/// Make every later `TestEnv` of this thread use a store from `factory` (`None`: back to SQLite).
pub fn set_test_store(factory: Option<StoreFactory>) {
    TEST_STORE.with(|f| f.set(factory));
}

/// The project's root (for fixtures).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy a folder recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

impl TestEnv {
    /// An empty temporary folder (no repo yet).
    pub fn empty() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let db = TEST_STORE.with(|f| f.get()).and_then(|factory| factory());
        TestEnv {
            tmp,
            repo,
            store: db.as_ref().map(|d| d.url.clone()),
            _store_guard: db.map(|d| Box::new(d) as Box<dyn std::any::Any>),
        }
    }

    /// A new config repo made by `ferry init`.
    pub fn new() -> Self {
        let env = TestEnv::empty();
        env.ferry_in(env.tmp.path(), &["init", "repo"]).ok();
        env
    }

    /// A copy of `fixtures/acme` as the config repo, with tenant acme-dev created.
    pub fn acme() -> Self {
        let env = TestEnv::empty();
        copy_dir(&project_root().join("fixtures/acme"), &env.repo);
        env.ferry(&["tenant", "create", "acme-dev", "--environment", "dev"])
            .ok();
        env
    }

    /// [`TestEnv::acme`] on the store at `store` (a database the caller owns).
    pub fn acme_on(store: &str) -> Self {
        let mut env = TestEnv::empty();
        env.store = Some(store.to_string());
        copy_dir(&project_root().join("fixtures/acme"), &env.repo);
        env.ferry(&["tenant", "create", "acme-dev", "--environment", "dev"])
            .ok();
        env
    }

    /// A `ferry` command run in the repo, with colour off and a git identity.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("ferry").unwrap();
        c.current_dir(&self.repo)
            .env("NO_COLOR", "1")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .env_remove("FERRY_TEST_ABORT_AFTER_WRITES");
        match &self.store {
            Some(url) => c.env("FERRY_STORE", url),
            None => c.env_remove("FERRY_STORE"),
        };
        c
    }

    /// Point a command at this env's store (`FERRY_STORE`), or at the repo's default.
    pub fn store_env(&self, c: &mut std::process::Command) {
        match &self.store {
            Some(url) => c.env("FERRY_STORE", url),
            None => c.env_remove("FERRY_STORE"),
        };
    }

    /// A connection to this env's store, as the binary opens it.
    pub fn open_store(&self) -> Box<dyn ferry::backend::store::Store + Send> {
        let url = self
            .store
            .clone()
            .unwrap_or_else(|| "sqlite:.ferry/store.db".to_string());
        ferry::backend::store::open(&url, &self.repo).unwrap()
    }

    /// Run `ferry ARGS` in the repo.
    pub fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_in(&self.repo.clone(), args)
    }

    /// Run `ferry ARGS` in `dir`.
    pub fn ferry_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.current_dir(dir).args(args);
        run(c)
    }

    /// Run `ferry ARGS` with `input` on stdin.
    pub fn ferry_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut c = self.cmd();
        c.args(args).write_stdin(input.to_string());
        run(c)
    }

    /// `ferry plan --tenant T --detailed-exitcode --output json`, expecting `code`.
    pub fn plan_json(&self, tenant: &str, code: i32) -> serde_json::Value {
        self.ferry(&[
            "plan",
            "--tenant",
            tenant,
            "--detailed-exitcode",
            "--output",
            "json",
        ])
        .expect(code)
        .json()
    }

    /// Append `suffix` to the first line of an agent file's instructions block.
    pub fn edit_first_instruction_line(&self, rel: &str, suffix: &str) {
        let text = self.read(rel);
        let i = text.find("instructions: |\n").unwrap() + "instructions: |\n".len();
        let end = i + text[i..].find('\n').unwrap();
        self.write(rel, &format!("{}{suffix}{}", &text[..end], &text[end..]));
    }

    /// Path of a file in the repo.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.repo.join(rel)
    }

    /// Write a file in the repo.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Read a file of the repo.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Run git in the repo, panicking on failure; returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .current_dir(&self.repo)
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Run a prepared command and capture its outcome.
pub fn run(mut c: Command) -> Run {
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A small valid tenant tree: a connection, a tool, two agents.
/// A new repo with `tenant` applied from the small tree and committed canonically.
pub fn applied_and_committed(tenant: &str) -> TestEnv {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", tenant]).ok();
    small_tree(&env, tenant);
    env.ferry(&["apply", "--tenant", tenant, "--yes"]).ok();
    env.ferry(&[
        "export",
        "--tenant",
        tenant,
        "--commit",
        "-m",
        "initial tree",
    ])
    .ok();
    env
}

pub fn small_tree(env: &TestEnv, tenant: &str) {
    let base = format!("tenants/{tenant}");
    env.write(
        &format!("{base}/connections/crm.yaml"),
        "apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\nspec:\n  type: http\n  baseUrl: https://crm.example.com\n  credentials:\n    apiKey: ${vars.CRM_API_KEY}\n",
    );
    env.write(
        &format!("{base}/tools/crm-lookup.yaml"),
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: crm-lookup\n  syncable: true\nspec:\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /customers/{id}\n",
    );
    env.write(
        &format!("{base}/agents/refund-bot.yaml"),
        "apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: refund-bot\nspec:\n  type: chat\n  model:\n    provider: openai\n    name: gpt-4o-mini\n  instructions: |\n    Handle refunds.\n    Be polite.\n",
    );
    env.write(
        &format!("{base}/agents/support-bot.yaml"),
        "apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: support-bot\n  syncable: true\nspec:\n  type: supervisor\n  model:\n    provider: openai\n    name: gpt-4o-mini\n    temperature: 0.2\n  instructions: |\n    You are Acme's support assistant.\n    Cite the knowledge base in every answer.\n  tools:\n  - crm-lookup\n  - builtin/web-search\n  subAgents:\n  - refund-bot\n",
    );
}

/// A `ferry serve` process on a loopback port, stopped (SIGTERM) when dropped.
pub struct Server {
    /// The child process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Everything the server wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Start `ferry serve --addr 127.0.0.1:0 EXTRA` in the repo and wait until it listens.
    pub fn start(env: &TestEnv, extra: &[&str]) -> Server {
        Server::start_with_vars(env, extra, &[])
    }

    /// [`Server::start`], with these environment variables set.
    pub fn start_with_vars(env: &TestEnv, extra: &[&str], vars: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("ferry"));
        c.envs(vars.iter().copied());
        c.current_dir(&env.repo)
            .env("NO_COLOR", "1")
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env_remove("FERRY_STORE")
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        env.store_env(&mut c);
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("ferry: listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start: {}", log.lock().unwrap()));
        Server { child, base, log }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stop the server with SIGTERM and wait for it; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Panic unless the status is `status`; returns the JSON body.
    pub fn expect(&self, status: u16) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "status {} (expected {status}): {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        if self.body.is_empty() {
            serde_json::Value::Null
        } else {
            self.json()
        }
    }
}

/// Send a request; `token` goes in `Authorization: Bearer`, `headers` as given.
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut all: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    all.extend_from_slice(headers);
    let page = request(method, url, &all, body);
    Answer {
        status: page.status,
        body: page.body,
    }
}

/// Send a request with `headers`, following no redirect.
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Page {
    use std::io::Read;
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some((ct, bytes)) => req.set("Content-Type", ct).send_bytes(bytes),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let set_cookie = resp.header("set-cookie").map(str::to_string);
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    Page {
        status,
        location,
        set_cookie,
        body,
    }
}

/// Send a JSON body.
pub fn http_json(method: &str, url: &str, token: Option<&str>, body: &serde_json::Value) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap();
    http(method, url, token, &[], Some(("application/json", &bytes)))
}

impl TestEnv {
    /// `ferry tenant list --output json` as `who`: the tenants listed.
    pub fn tenants_as(&self, who: &str) -> Vec<serde_json::Value> {
        let list = self
            .ferry(&["--as", who, "tenant", "list", "--output", "json"])
            .ok()
            .json();
        list["items"].as_array().unwrap().clone()
    }

    /// `ferry publishes --tenant T [ARGS] --output json`, read as `root` (a
    /// store owner once the store has users): the publish log as JSON.
    pub fn publish_log(&self, tenant: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--as", "root", "publishes", "--tenant", tenant];
        all.extend_from_slice(args);
        all.extend(["--output", "json"]);
        self.ferry(&all).ok().json()
    }

    /// Add `user`, acting as `root` (add `root` first: the first user owns everything), and grant roles.
    pub fn user(&self, user: &str, grants: &[(&str, &str)]) {
        self.ferry(&["--as", "root", "user", "add", user]).ok();
        for (tenant, role) in grants {
            self.ferry(&["--as", "root", "grant", user, tenant, role])
                .ok();
        }
    }

    /// `ferry token create --user U [--tenant T]`, acting as the user.
    pub fn token(&self, user: &str, tenant: Option<&str>) -> String {
        let mut args = vec!["--as", "root", "token", "create", "--user", user];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let run = self.ferry(&args).ok();
        run.stdout.trim().to_string()
    }
}

/// One entry of ZIP bytes, as text.
pub fn zip_entry(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut f = archive.by_name(name).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    text
}

/// Run git in `dir` as a fixed author at a fixed date (the same tree gives
/// the same commit ID in every clone); panics with git's message on failure.
pub fn git_at(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test User")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test User")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An HTTP answer with the headers a browser acts on.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: u16,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    /// The `Set-Cookie` header.
    pub set_cookie: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Page {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send a request as a browser would (`cookie` in `Cookie`, redirects not followed).
pub fn browse(method: &str, url: &str, cookie: Option<&str>, body: Option<(&str, &[u8])>) -> Page {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    request(method, url, &headers, body)
}

/// A URL-encoded form body.
pub fn form_body(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// A signed-in web UI session: its cookie and its CSRF token.
pub struct UiSession {
    /// `ferry_session=…`.
    pub cookie: String,
    /// The session's CSRF token, as its forms carry it.
    pub csrf: String,
}

impl UiSession {
    /// Sign in to the UI of `server` with an API token.
    pub fn sign_in(server: &Server, token: &str) -> UiSession {
        let page = browse(
            "POST",
            &server.url("/sign-in"),
            None,
            Some((FORM, &form_body(&[("token", token)]))),
        );
        assert_eq!(page.status, 303, "sign-in: {}", page.text());
        let cookie = page
            .set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string();
        let secret = cookie.strip_prefix("ferry_session=").unwrap();
        UiSession {
            csrf: ferry::service::sessions::csrf_token(secret),
            cookie,
        }
    }

    /// GET a page of the session.
    pub fn get(&self, server: &Server, path: &str) -> Page {
        browse("GET", &server.url(path), Some(&self.cookie), None)
    }

    /// POST a form with the session's CSRF token.
    pub fn post(&self, server: &Server, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        browse(
            "POST",
            &server.url(path),
            Some(&self.cookie),
            Some((FORM, &form_body(&all))),
        )
    }
}

/// The media type of a URL-encoded form.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A `multipart/form-data` body of `fields`, then `zip` as the file field
/// `archive`; its content type and bytes.
pub fn multipart(fields: &[(&str, &str)], zip: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ferry-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
