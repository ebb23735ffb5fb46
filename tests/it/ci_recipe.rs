//! The README's GitHub Actions recipe, run for real: its `run:` lines are
//! read from the README's YAML and run in order, job by job, in fresh clones
//! of a config repo, against a `ferry serve` on loopback: the pull
//! request's plan comment (posted, then updated in place through a stand-in
//! `gh` that records its calls), the apply on merge, the publish on a tag.
//! The checkout and `cargo install` steps are what GitHub and the freshly
//! built binary stand for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{copy_dir, git_at, project_root, Server, TestEnv};

/// The first ```yaml block of the README's CI recipe section.
fn recipe() -> Value {
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let section = &readme[readme.find("## CI recipe (GitHub Actions)").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("\n```").unwrap()];
    serde_saphyr::from_str(yaml).unwrap()
}

/// What the runner knows: the values of the `${{ … }}` expressions the recipe uses.
struct Runner {
    tmp: PathBuf,
    origin: PathBuf,
    expressions: BTreeMap<&'static str, String>,
    path: String,
    /// Variables for the stand-in `gh`.
    gh_env: Vec<(&'static str, PathBuf)>,
    runs: usize,
}

impl Runner {
    /// `text` with every `${{ expr }}` replaced; an expression the runner does not know fails the test.
    fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("}}").unwrap() + i;
            let expr = rest[i + 3..end].trim();
            let value = self.expressions.get(expr).unwrap_or_else(|| {
                panic!("the recipe uses `{expr}`, which the test does not know")
            });
            out.push_str(value);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// Run job `name` of `recipe` at commit `sha`, with GitHub's variables as given.
    fn job(&mut self, recipe: &Value, name: &str, sha: &str, github: &[(&str, &str)]) {
        self.runs += 1;
        let checkout = self.tmp.join(format!("run-{}-{name}", self.runs));
        git_at(
            &self.tmp,
            &[
                "clone",
                "-q",
                self.origin.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );
        git_at(&checkout, &["checkout", "-q", sha]);
        let job = &recipe["jobs"][name];
        let mut env: Vec<(String, String)> = Vec::new();
        for scope in [&recipe["env"], &job["env"]] {
            for (k, v) in scope.as_object().into_iter().flatten() {
                env.push((k.clone(), self.expand(&scalar(v))));
            }
        }
        for step in job["steps"].as_array().unwrap() {
            let Some(run) = step["run"].as_str() else {
                assert!(step["uses"]
                    .as_str()
                    .unwrap()
                    .starts_with("actions/checkout"));
                continue;
            };
            if run.starts_with("cargo install") {
                continue;
            }
            let mut c = std::process::Command::new("bash");
            c.current_dir(&checkout)
                .args(["-e", "-o", "pipefail", "-c", &self.expand(run)])
                .env("PATH", &self.path)
                .env("NO_COLOR", "1")
                .env_remove("FERRY_USER")
                .env("GITHUB_SHA", sha)
                .env("GITHUB_REPOSITORY", "acme/config");
            for (k, v) in github {
                c.env(k, v);
            }
            for (k, v) in &self.gh_env {
                c.env(k, v);
            }
            for (k, v) in &env {
                c.env(k, v);
            }
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "job {name}, step `{run}` failed:\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A stand-in for `gh`: records each call; `gh api …/comments` answers the ids of earlier plan comments.
const FAKE_GH: &str = r#"#!/bin/sh
printf 'gh %s\n' "$*" >> "$GH_LOG"
case "$1 $2" in
  "api -X") cp plan.md "$GH_LOG.updated" ;;
  "api "*) cat "$GH_COMMENTS" ;;
  "pr comment") cp plan.md "$GH_LOG.posted"; echo 4242 > "$GH_COMMENTS" ;;
  *) echo "unexpected gh call" >&2; exit 1 ;;
esac
"#;

#[test]
fn the_readme_ci_recipe_runs_against_a_loopback_server() {
    use std::os::unix::fs::PermissionsExt;
    let recipe = recipe();
    // The server: its own folder and store, a `ci` user who may publish.
    let server_env = TestEnv::new();
    server_env
        .ferry(&["tenant", "create", "acme-dev", "--environment", "dev"])
        .ok();
    server_env
        .ferry(&["--as", "root", "user", "add", "root"])
        .ok();
    server_env.user("ci", &[("acme-dev", "admin")]);
    let token = server_env.token("ci", None);
    let server = Server::start(&server_env, &[]);

    // The config repo on "GitHub": a bare origin, and a developer's clone.
    let tmp = server_env.tmp.path().to_path_buf();
    let origin = tmp.join("origin.git");
    git_at(
        &tmp,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    let dev = tmp.join("dev");
    copy_dir(&project_root().join("fixtures/acme"), &dev);
    git_at(&dev, &["init", "-q", "-b", "main"]);
    git_at(&dev, &["add", "-A"]);
    git_at(&dev, &["commit", "-q", "-m", "acme"]);
    git_at(&dev, &["remote", "add", "origin", origin.to_str().unwrap()]);
    git_at(&dev, &["push", "-q", "origin", "main"]);

    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("gh"), FAKE_GH).unwrap();
    std::fs::set_permissions(bin.join("gh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.join("gh.log");
    let comments = tmp.join("comments");
    std::fs::write(&comments, "").unwrap();
    let ferry_dir = assert_cmd::cargo::cargo_bin("ferry")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        ferry_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut runner = Runner {
        tmp: tmp.clone(),
        origin: origin.clone(),
        expressions: BTreeMap::new(),
        path,
        gh_env: vec![("GH_LOG", log.clone()), ("GH_COMMENTS", comments.clone())],
        runs: 0,
    };
    runner
        .expressions
        .insert("secrets.FERRY_STORE", server.base.clone());
    runner
        .expressions
        .insert("secrets.FERRY_TOKEN", token.clone());
    runner
        .expressions
        .insert("github.token", "gh-test-token".into());
    runner
        .expressions
        .insert("github.event.pull_request.number", "7".into());

    // The first merge applies the repo as it is.
    let first = git_at(&dev, &["rev-parse", "HEAD"]);
    runner.job(
        &recipe,
        "apply",
        &first,
        &[("GITHUB_REF", "refs/heads/main")],
    );

    // A branch edit, pushed twice: the plan comment is posted, then updated in place.
    git_at(&dev, &["checkout", "-q", "-b", "tone"]);
    let bot = dev.join("tenants/acme-dev/agents/support-bot.yaml");
    let text = std::fs::read_to_string(&bot).unwrap();
    std::fs::write(
        &bot,
        text.replacen("temperature: 0.2", "temperature: 0.4", 1),
    )
    .unwrap();
    git_at(&dev, &["commit", "-q", "-am", "warmer support bot"]);
    git_at(&dev, &["push", "-q", "origin", "tone"]);
    let head = git_at(&dev, &["rev-parse", "HEAD"]);
    runner
        .expressions
        .insert("github.event.pull_request.head.sha", head.clone());
    for _push in 0..2 {
        runner.job(
            &recipe,
            "plan",
            &head,
            &[("GITHUB_REF", "refs/pull/7/merge")],
        );
    }
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.matches("gh pr comment 7 --body-file plan.md").count(),
        1,
        "{calls}"
    );
    assert!(
        calls.contains("gh api -X PATCH repos/acme/config/issues/comments/4242 -F body=@plan.md"),
        "{calls}"
    );
    let posted = std::fs::read_to_string(tmp.join("gh.log.posted")).unwrap();
    assert!(
        posted.starts_with("<!-- ferry-plan:acme-dev -->\n"),
        "{posted}"
    );
    assert!(
        posted.contains("support-bot") && posted.contains("spec.model.temperature"),
        "{posted}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.join("gh.log.updated")).unwrap(),
        posted
    );

    // The merge applies; then the store holds the merged tree.
    git_at(&dev, &["checkout", "-q", "main"]);
    git_at(&dev, &["merge", "-q", "--ff-only", "tone"]);
    git_at(&dev, &["push", "-q", "origin", "main"]);
    runner.job(
        &recipe,
        "apply",
        &head,
        &[("GITHUB_REF", "refs/heads/main")],
    );
    let store = format!(
        "sqlite:{}",
        server_env.repo.join(".ferry/store.db").display()
    );
    let check = server_env.ferry(&[
        "--as",
        "root",
        "--store",
        &store,
        "--repo",
        dev.to_str().unwrap(),
        "plan",
        "--tenant",
        "acme-dev",
        "--ref",
        "HEAD",
        "--detailed-exitcode",
    ]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);

    // A tag publishes, as the token's user, and the publish tag reaches the origin.
    git_at(&dev, &["tag", "release/1"]);
    git_at(&dev, &["push", "-q", "origin", "release/1"]);
    runner.job(
        &recipe,
        "publish",
        &head,
        &[
            ("GITHUB_REF", "refs/tags/release/1"),
            ("GITHUB_REF_NAME", "release/1"),
        ],
    );
    let publishes = server_env.publish_log("acme-dev", &[]);
    assert_eq!(publishes["items"][0]["publishedBy"], "ci", "{publishes}");
    assert_eq!(
        publishes["items"][0]["message"], "release release/1",
        "{publishes}"
    );
    let tags = git_at(&origin, &["tag", "--list", "acme-dev/publish/*"]);
    assert_eq!(tags, "acme-dev/publish/1");
}
