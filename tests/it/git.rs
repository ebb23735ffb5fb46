//! Git-backed publishing: plans from revisions, export --commit, staging
//! diff, publish with tags, history, revert, and `git revert` round trips.

use crate::common::*;

const T: &str = "acme-dev";
const BOT: &str = "tenants/acme-dev/agents/support-bot.yaml";

/// A repo with tenant acme-dev applied from the small tree and committed canonically.
fn applied_and_committed() -> TestEnv {
    crate::common::applied_and_committed(T)
}

fn edit(env: &TestEnv, rel: &str, from: &str, to: &str) {
    let text = env.read(rel);
    assert!(
        text.contains(from),
        "{rel} does not contain {from:?}:\n{text}"
    );
    env.write(rel, &text.replace(from, to));
}

fn publish(env: &TestEnv, msg: &str) -> serde_json::Value {
    env.ferry(&["publish", "--tenant", T, "-m", msg, "--output", "json"])
        .ok()
        .json()
}

fn staging_diff(env: &TestEnv) -> serde_json::Value {
    env.ferry(&["diff", "--tenant", T, "--output", "json"])
        .ok()
        .json()
}

#[test]
fn export_commit_writes_a_clean_commit_and_plan_ref_reads_it() {
    let env = applied_and_committed();
    let status = env.git(&["status", "--porcelain"]);
    assert!(
        !status.contains("tenants/acme-dev"),
        "the tenant folder must be clean:\n{status}"
    );
    let log = env.git(&["log", "--oneline"]);
    assert!(log.contains("initial tree"));
    // A second export commits nothing.
    let again = env
        .ferry(&[
            "export", "--tenant", T, "--commit", "-m", "again", "--output", "json",
        ])
        .ok()
        .json();
    assert!(again["commit"].is_null());
    // plan --ref reads the committed tree even with the folder gone from the working tree.
    std::fs::remove_dir_all(env.path("tenants/acme-dev/agents")).unwrap();
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert_eq!(plan["summary"]["skip"], 4);
    let head = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(plan["sourceCommit"], head);
    env.git(&["checkout", "--", "."]);
    // apply --ref records the commit; doing it again changes nothing.
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let tenants = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(tenants["items"][0]["lastCommit"], head);
    let rev = tenants["items"][0]["revision"].clone();
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let tenants = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        tenants["items"][0]["revision"], rev,
        "re-recording the same commit must not bump the revision"
    );
}

#[test]
fn plan_ref_after_an_applied_commit_reads_only_the_change_and_matches_a_full_plan() {
    let env = applied_and_committed();
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env.git(&["commit", "-qam", "sharper instructions"]);
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok();
    let incremental = r.json();
    let full = env
        .ferry(&["plan", "--tenant", T, "--output", "json"])
        .ok()
        .json();
    assert_eq!(incremental["summary"], full["summary"]);
    assert_eq!(incremental["actions"], full["actions"]);
    assert_eq!(incremental["summary"]["update"], 1);
    let text = env.ferry(&["plan", "--tenant", T, "--ref", "HEAD"]).ok();
    assert!(
        text.stderr
            .contains("1 file(s) changed since the last applied commit"),
        "{}",
        text.stderr
    );
    assert!(text.stdout.contains("Always cite your sources."));
    // Markdown for a pull-request comment.
    let md = env
        .ferry(&[
            "plan", "--tenant", T, "--ref", "HEAD", "--output", "markdown",
        ])
        .ok()
        .stdout;
    assert!(
        md.contains("| create | update | unchanged | delete | conflict |"),
        "{md}"
    );
    assert!(
        md.contains("<details><summary><code>update</code> Agent <b>support-bot</b></summary>"),
        "{md}"
    );
    assert!(
        md.contains("`spec.instructions`") && md.contains("+ Always cite your sources."),
        "{md}"
    );
    assert!(md.contains("From commit `"), "{md}");
}

/// Apply from git, then change support-bot in the store from an uncommitted
/// folder (outside git) and put the folder back.
fn drift_support_bot(env: &TestEnv) {
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    edit(
        env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Hot fix.",
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.git(&["checkout", "--", "."]);
}

#[test]
pub fn a_store_migrated_to_the_change_journal_keeps_its_drift() {
    let env = applied_and_committed();
    if env.store.is_some() {
        return; // the SQLite file is what this test downgrades
    }
    drift_support_bot(&env);
    let status = || {
        env.ferry(&["store", "status", "--output", "json"])
            .ok()
            .json()
    };
    let before = status()["tenants"].clone();
    // Back to schema 3, which had no journal and no kept resource count:
    // the drift is only in the rows.
    {
        let conn = rusqlite::Connection::open(env.repo.join(".ferry/store.db")).unwrap();
        conn.execute_batch(
            "DROP TABLE drift_journal; ALTER TABLE tenants DROP COLUMN resource_count; \
             UPDATE meta SET value = '3' WHERE key = 'schema';",
        )
        .unwrap();
    }
    let migrated = env.ferry(&["store", "migrate"]).ok();
    assert!(
        migrated.stdout.contains("from version 3 to 5"),
        "{}",
        migrated.stdout
    );
    assert_eq!(
        status()["tenants"],
        before,
        "the migration counts each tenant's resources"
    );
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    let drift = plan["drift"].as_array().expect("drift listed");
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0]["name"], "support-bot");
    // The export of what changed finds it through the journal too.
    env.ferry(&["export", "--tenant", T, "--commit", "-m", "hot fix"])
        .ok();
    assert!(env
        .read(&format!("tenants/{T}/agents/support-bot.yaml"))
        .contains("Hot fix."));
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert!(plan.get("drift").is_none(), "{plan}");
}

#[test]
pub fn plan_reports_drift_when_the_store_changed_outside_git() {
    let env = applied_and_committed();
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert!(plan.get("drift").is_none());
    drift_support_bot(&env);
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    let drift = plan["drift"].as_array().expect("drift listed");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["name"], "support-bot");
    assert_eq!(
        plan["summary"]["update"], 1,
        "the full plan puts git's version back"
    );
    let text = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD"])
        .ok()
        .stdout;
    assert!(
        text.contains("drift:") && text.contains("Agent support-bot"),
        "{text}"
    );
    // Applying from git ends the drift.
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert!(plan.get("drift").is_none());
    assert_eq!(plan["summary"]["update"], 0);
}

#[test]
pub fn publish_cycle() {
    let env = applied_and_committed();
    // 1. Publish: an annotated tag with who, when and the summary.
    let p1 = publish(&env, "first release");
    assert_eq!(p1["hasChanges"], true);
    assert_eq!(p1["tag"], "acme-dev/publish/1");
    assert!(p1["changeTrackId"].as_str().unwrap().starts_with("chg_"));
    assert_eq!(
        env.git(&["cat-file", "-t", "acme-dev/publish/1"]).trim(),
        "tag"
    );
    let tag = env.git(&["cat-file", "-p", "acme-dev/publish/1"]);
    assert!(tag.contains("published_by: Test User"), "{tag}");
    assert!(tag.contains("published_at: 20"), "{tag}");
    assert!(tag.contains("created Agent support-bot"), "{tag}");
    assert!(tag.contains(p1["changeTrackId"].as_str().unwrap()), "{tag}");
    assert_eq!(
        env.git(&["rev-list", "-n1", "acme-dev/publish/1"]).trim(),
        env.git(&["rev-parse", "HEAD"]).trim()
    );
    // 2. Nothing changed: refused.
    let again = env
        .ferry(&["publish", "--tenant", T, "-m", "again", "--output", "json"])
        .expect(1);
    assert_eq!(again.json()["hasChanges"], false);
    assert_eq!(staging_diff(&env)["hasChanges"], false);
    // 3. Edit one agent's instructions and apply: the diff shows exactly that field.
    let old = "You are Acme's support assistant.\nCite the knowledge base in every answer.\n";
    let new = "You are Acme's support assistant.\nAlways cite your sources.\n";
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    let d = staging_diff(&env);
    assert_eq!(d["hasChanges"], true);
    let res = d["resources"].as_array().unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0]["kind"], "Agent");
    assert_eq!(res[0]["name"], "support-bot");
    assert!(res[0]["id"].as_str().unwrap().starts_with("agt_"));
    let changes = res[0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["path"], "spec.instructions");
    assert_eq!(changes[0]["production"], old);
    assert_eq!(changes[0]["staging"], new);
    // 4. Publish 2; the history lists two, newest first.
    env.ferry(&[
        "export",
        "--tenant",
        T,
        "--commit",
        "-m",
        "sharper instructions",
    ])
    .ok();
    let p2 = publish(&env, "sharper instructions");
    assert_eq!(p2["tag"], "acme-dev/publish/2");
    assert_eq!(p2["summary"]["updated"][0]["name"], "support-bot");
    let list = env
        .ferry(&["publishes", "--tenant", T, "--output", "json"])
        .ok()
        .json();
    let list = list["items"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["number"], 2);
    assert_eq!(list[0]["changeTrackId"], p2["changeTrackId"]);
    assert_eq!(list[1]["number"], 1);
    for p in list {
        assert_eq!(p["publishedBy"], "Test User");
        assert!(p["publishedAt"].as_str().unwrap().ends_with('Z'));
        assert!(p["tag"].is_string() && p["commit"].is_string() && p["summary"].is_object());
    }
    let by_agent = env
        .ferry(&[
            "publishes",
            "--tenant",
            T,
            "--agent",
            "refund-bot",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        by_agent["items"].as_array().unwrap().len(),
        1,
        "refund-bot changed only in publish 1"
    );
    // 5. Revert publish 2: staging goes back, production stays.
    let id2 = p2["changeTrackId"].as_str().unwrap();
    let preview = env
        .ferry(&[
            "revert",
            "--yes",
            "--tenant",
            T,
            id2,
            "--preview",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(preview["written"], false);
    assert_eq!(preview["resources"][0]["changes"][0]["after"], old);
    assert_eq!(
        staging_diff(&env)["hasChanges"],
        false,
        "preview writes nothing"
    );
    env.ferry(&["revert", "--yes", "--tenant", T, id2]).ok();
    let d = staging_diff(&env);
    let c = &d["resources"][0]["changes"][0];
    assert_eq!(c["path"], "spec.instructions");
    assert_eq!(c["production"], new);
    assert_eq!(c["staging"], old);
    // 6. Publish 3: production equals publish 1's content.
    let p3 = env
        .ferry(&["publish", "--tenant", T, "-m", "revert", "--output", "json"])
        .ok();
    assert!(
        p3.stderr.contains("can't be reproduced from git"),
        "{}",
        p3.stderr
    );
    assert!(p3.json()["tag"].is_null());
    assert_eq!(staging_diff(&env)["hasChanges"], false);
    let out = env.tmp.path().join("now");
    env.ferry(&["export", "--tenant", T, "--out", out.to_str().unwrap()])
        .ok();
    let now = std::fs::read_to_string(out.join("agents/support-bot.yaml")).unwrap();
    let at1 = env.git(&["show", &format!("acme-dev/publish/1:{BOT}")]);
    assert_eq!(now, at1);
}

#[test]
pub fn revert_of_an_older_publish_keeps_later_changes_and_reports_conflicts() {
    let env = applied_and_committed();
    publish(&env, "one");
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    let p2 = publish(&env, "two");
    let id2 = p2["changeTrackId"].as_str().unwrap().to_string();
    // A later change to a different field of the same resource.
    edit(&env, BOT, "temperature: 0.2", "temperature: 0.5");
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    publish(&env, "three");
    let r = env
        .ferry(&["revert", "--yes", "--tenant", T, &id2, "--output", "json"])
        .ok()
        .json();
    assert!(r["conflicts"].as_array().unwrap().is_empty());
    let out = env.tmp.path().join("after");
    env.ferry(&["export", "--tenant", T, "--out", out.to_str().unwrap()])
        .ok();
    let bot = std::fs::read_to_string(out.join("agents/support-bot.yaml")).unwrap();
    assert!(
        bot.contains("Cite the knowledge base in every answer."),
        "{bot}"
    );
    assert!(bot.contains("temperature: 0.5"), "{bot}");

    // Same field changed again after the publish: a conflict, kept.
    let env = applied_and_committed();
    publish(&env, "one");
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    let p2 = publish(&env, "two");
    let id2 = p2["changeTrackId"].as_str().unwrap().to_string();
    edit(&env, BOT, "Always cite your sources.", "Never guess.");
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    let r = env
        .ferry(&["revert", "--yes", "--tenant", T, &id2, "--output", "json"])
        .expect(1);
    let j = r.json();
    let conflicts = j["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["path"], "spec.instructions");
    assert_eq!(conflicts[0]["name"], "support-bot");
    assert!(conflicts[0]["staging"]
        .as_str()
        .unwrap()
        .contains("Never guess."));
    let d = staging_diff(&env);
    assert!(d["resources"][0]["changes"][0]["staging"]
        .as_str()
        .unwrap()
        .contains("Never guess."));
}

#[test]
fn revert_write_tree_writes_the_repo_not_the_store() {
    let env = applied_and_committed();
    publish(&env, "one");
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["export", "--tenant", T, "--commit", "-m", "two"])
        .ok();
    let p2 = publish(&env, "two");
    let id2 = p2["changeTrackId"].as_str().unwrap();
    env.ferry(&["revert", "--yes", "--tenant", T, id2, "--write-tree"])
        .ok();
    assert!(env
        .read(BOT)
        .contains("Cite the knowledge base in every answer."));
    assert_eq!(
        staging_diff(&env)["hasChanges"],
        false,
        "the store is unchanged"
    );
    let status = env.git(&["status", "--porcelain"]);
    assert!(status.contains("agents/support-bot.yaml"), "{status}");
}

/// Applied from HEAD and published once, then the agent's instructions edited in the folder.
fn published_from_git_and_edited() -> TestEnv {
    let env = applied_and_committed();
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    publish(&env, "one");
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    env
}

#[test]
fn git_revert_of_a_publish_commit_validates_plans_and_applies() {
    let env = published_from_git_and_edited();
    env.write(
        "tenants/acme-dev/tools/web-lookup.yaml",
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: web-lookup\nspec:\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /search\n",
    );
    env.git(&["add", "tenants"]);
    env.git(&["commit", "-qm", "sharper instructions and a tool"]);
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let p2 = publish(&env, "two");
    assert_eq!(
        p2["tag"], "acme-dev/publish/2",
        "the applied commit holds the tree"
    );
    env.git(&["revert", "--no-edit", "HEAD"]);
    env.ferry(&["validate", "--tenant", T]).ok();
    let plan = env
        .ferry(&[
            "plan", "--tenant", T, "--ref", "HEAD", "--prune", "--output", "json",
        ])
        .ok()
        .json();
    assert_eq!(plan["summary"]["update"], 1);
    assert_eq!(plan["summary"]["delete"], 1);
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--prune", "--yes"])
        .ok();
    // The store matches the reverted tree.
    let out = env.tmp.path().join("store-tree");
    env.ferry(&["export", "--tenant", T, "--out", out.to_str().unwrap()])
        .ok();
    for f in [
        "agents/support-bot.yaml",
        "agents/refund-bot.yaml",
        "tools/crm-lookup.yaml",
        "connections/crm.yaml",
    ] {
        let at_head = env.git(&["show", &format!("HEAD:tenants/acme-dev/{f}")]);
        assert_eq!(
            std::fs::read_to_string(out.join(f)).unwrap(),
            at_head,
            "{f}"
        );
    }
    assert!(!out.join("tools/web-lookup.yaml").exists());
    let again = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert_eq!(again["summary"]["update"], 0);
    assert_eq!(again["summary"]["create"], 0);
    // diff between two revisions.
    let d = env
        .ferry(&["diff", "HEAD~1", "HEAD", "--tenant", T, "--output", "json"])
        .ok()
        .json();
    assert_eq!(d["hasChanges"], true);
    let names: Vec<&str> = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-lookup", "support-bot"]);
    assert_eq!(d["resources"][0]["status"], "deleted");
    assert_eq!(d["resources"][1]["changes"][0]["path"], "spec.instructions");
}

#[test]
fn publish_agent_takes_the_agent_and_its_changed_dependencies() {
    let env = applied_and_committed();
    let p = env
        .ferry(&[
            "publish",
            "--tenant",
            T,
            "--agent",
            "refund-bot",
            "-m",
            "just refunds",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let created: Vec<&str> = p["summary"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["refund-bot"]);
    let p = env
        .ferry(&[
            "publish",
            "--tenant",
            T,
            "--agent",
            "support-bot",
            "-m",
            "support",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let created: Vec<&str> = p["summary"]["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["crm", "crm-lookup", "support-bot"]);
    env.ferry(&["publish", "--tenant", T, "-m", "all", "--output", "json"])
        .expect(1);
}

#[test]
fn bad_git_input_is_refused_clearly() {
    let env = applied_and_committed();
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", "no-such-rev"])
        .expect(1);
    assert!(r.stderr.contains("no-such-rev"), "{}", r.stderr);
    let r = env
        .ferry(&["plan", "--tenant", "other", "--ref", "HEAD"])
        .expect(1);
    assert!(r.stderr.contains("other"), "{}", r.stderr);
    env.ferry(&["tenant", "create", "empty-one"]).ok();
    let r = env
        .ferry(&["plan", "--tenant", "empty-one", "--ref", "HEAD"])
        .expect(1);
    assert!(r.stderr.contains("tree not found"), "{}", r.stderr);
    let r = env
        .ferry(&["revert", "--yes", "--tenant", T, "chg_0000000000000000"])
        .expect(1);
    assert!(
        r.stderr.contains("no publish with change id"),
        "{}",
        r.stderr
    );
    let r = env.ferry(&["export", "--tenant", T, "--commit"]).expect(1);
    assert!(r.stderr.contains("commit message"), "{}", r.stderr);
    let r = env.ferry(&["diff", "HEAD"]).expect(1);
    assert!(r.stderr.contains("two revisions"), "{}", r.stderr);
    let r = env
        .ferry(&["diff", "--tenant", T, "--agent", "ghost"])
        .expect(1);
    assert!(r.stderr.contains("ghost"), "{}", r.stderr);
    // A broken file at a revision names the file.
    edit(
        &env,
        BOT,
        "type: supervisor",
        "type: supervisor\n  bogus: 1",
    );
    env.git(&["commit", "-qam", "broken"]);
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD"])
        .expect(1);
    assert!(r.stderr.contains("agents/support-bot.yaml"), "{}", r.stderr);
}

/// The change ID of a publish answer, whichever case its keys are in.
fn change_id_of(p: &serde_json::Value) -> String {
    p["change_track_id"]
        .as_str()
        .or(p["changeTrackId"].as_str())
        .unwrap()
        .to_string()
}

/// Publish 2 applied from a commit, then reverted: the store drifted from git.
fn reverted_outside_git() -> TestEnv {
    let env = published_from_git_and_edited();
    env.git(&["commit", "-qam", "cite sources"]);
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let two = change_id_of(&publish(&env, "two"));
    env.ferry(&["revert", "--yes", "--tenant", T, &two]).ok();
    env
}

/// Issue 13.4: a revert changes the store outside git (drift); committing
/// the store's own drafts with `export --commit` makes that commit the last
/// applied one, so `plan` no longer reports drift, from git or from the folder.
#[test]
pub fn export_commit_of_the_drafts_clears_the_drift_of_a_revert() {
    let env = reverted_outside_git();
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert_eq!(plan["drift"][0]["name"], "support-bot", "{plan:#}");

    let run = env
        .ferry(&[
            "export",
            "--tenant",
            T,
            "--commit",
            "-m",
            "capture drift",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let head = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(run["commit"], head.as_str(), "{run:#}");
    assert!(env.read(BOT).contains("Cite the knowledge base"));
    for args in [
        &["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"][..],
        &["plan", "--tenant", T, "--output", "json"][..],
    ] {
        let plan = env.ferry(args).ok().json();
        assert!(plan.get("drift").is_none(), "{args:?}: {plan:#}");
        assert_eq!(plan["summary"]["update"], 0, "{args:?}: {plan:#}");
    }
    let tenants = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .stdout;
    assert!(
        tenants.contains(&head),
        "the last applied commit: {tenants}"
    );
}

/// Issue 13.4, the drafts committed by hand first: `export --commit` has
/// nothing to commit, and HEAD, which holds the drafts, becomes the last applied commit.
#[test]
fn export_commit_records_head_when_it_holds_the_drafts_already() {
    let env = reverted_outside_git();
    env.ferry(&["export", "--tenant", T]).ok();
    env.git(&["commit", "-qam", "the reverted drafts"]);
    let run = env
        .ferry(&[
            "export", "--tenant", T, "--commit", "-m", "again", "--output", "json",
        ])
        .ok()
        .json();
    assert!(run["commit"].is_null(), "nothing new to commit: {run:#}");
    let plan = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD", "--output", "json"])
        .ok()
        .json();
    assert!(plan.get("drift").is_none(), "{plan:#}");
}

/// `export --commit` without a message is refused before anything is
/// written, both when only the changes would be exported and otherwise.
#[test]
fn export_commit_needs_a_message() {
    let env = applied_and_committed();
    let head = env.git(&["rev-parse", "HEAD"]);
    for args in [
        vec!["export", "--tenant", T, "--commit"],
        vec![
            "export",
            "--tenant",
            T,
            "--commit",
            "--out",
            "tenants/acme-dev",
        ],
    ] {
        let r = env.ferry(&args).expect(1);
        assert!(r.stderr.contains("needs a commit message"), "{}", r.stderr);
        assert!(r
            .stderr
            .contains("hint: `ferry export --tenant acme-dev --commit -m"));
    }
    assert_eq!(
        env.git(&["rev-parse", "HEAD"]),
        head,
        "nothing was committed"
    );
}

#[test]
fn a_whole_export_that_cannot_write_its_folder_commits_nothing() {
    let env = applied_and_committed();
    // HEAD's folder is no longer the applied commit's: the whole export runs.
    edit(&env, BOT, "type: supervisor", "type: supervisor # edited");
    env.git(&["commit", "-qam", "hand edit"]);
    let head = env.git(&["rev-parse", "HEAD"]);
    std::fs::remove_dir_all(env.path("tenants/acme-dev/agents")).unwrap();
    env.write("tenants/acme-dev/agents", "a file where a step folder goes");
    let r = env
        .ferry(&["export", "--tenant", T, "--commit", "-m", "over a file"])
        .expect(1);
    assert!(r.stderr.contains("cannot write"), "{}", r.stderr);
    assert!(r.stderr.contains("is not a folder"), "{}", r.stderr);
    assert_eq!(
        env.git(&["rev-parse", "HEAD"]),
        head,
        "nothing was committed"
    );
    assert_eq!(
        env.read("tenants/acme-dev/agents"),
        "a file where a step folder goes"
    );
}

/// A tree written by hand (a comment, another layout) applied from git,
/// then a commit that touches only another folder: HEAD holds the
/// tenant's folder as the applied commit does (the same tree), so the
/// publish tags HEAD. Encoding the drafts would not match the hand-written
/// files; the tree IDs say it without reading them.
#[test]
fn a_publish_tags_head_when_only_other_folders_moved_since_the_apply() {
    let env = applied_and_committed();
    edit(
        &env,
        BOT,
        "Cite the knowledge base in every answer.",
        "Always cite your sources.",
    );
    let text = env.read(BOT);
    env.write(BOT, &format!("# written by hand\n{text}"));
    env.git(&["add", "tenants"]);
    env.git(&["commit", "-qm", "by hand"]);
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let applied = env.git(&["rev-parse", "HEAD"]);
    env.write("NOTES.md", "release notes\n");
    env.git(&["add", "NOTES.md"]);
    env.git(&["commit", "-qm", "notes"]);
    let head = env.git(&["rev-parse", "HEAD"]);
    assert_ne!(head, applied);
    let p = publish(&env, "by hand");
    assert_eq!(p["tag"], "acme-dev/publish/1", "{p}");
    assert_eq!(
        env.git(&["rev-list", "-n1", "acme-dev/publish/1"]).trim(),
        head.trim()
    );
    // The tenant's folder moves at HEAD (only a comment): the drafts are
    // still what the applied commit holds, and that commit is tagged.
    edit(&env, BOT, "Always cite your sources.", "Cite two sources.");
    env.git(&["commit", "-qam", "two sources"]);
    env.ferry(&["apply", "--tenant", T, "--ref", "HEAD", "--yes"])
        .ok();
    let applied = env.git(&["rev-parse", "HEAD"]);
    edit(&env, BOT, "# written by hand\n", "# by hand\n");
    env.git(&["commit", "-qam", "a comment"]);
    let p = publish(&env, "two sources");
    assert_eq!(p["tag"], "acme-dev/publish/2", "{p}");
    assert_eq!(
        env.git(&["rev-list", "-n1", "acme-dev/publish/2"]).trim(),
        applied.trim()
    );
}
