//! Consistent output (issue 13, items 15–19): one JSON shape per kind of
//! answer, errors as JSON with `--output json`, the Markdown plan as a line
//! diff in the text plan's words, the same flags everywhere, errors that
//! suggest the fix, and a demo whose lines can be pasted.

use crate::common::{Run, TestEnv};

const T: &str = "acme-dev";

/// A repo with acme-dev applied from the small tree and committed.
fn applied() -> TestEnv {
    crate::common::applied_and_committed(T)
}

/// Every object key in a JSON value, recursively (not the keys under
/// `document`/`spec`, which are the resource's own).
fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                keys(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

fn assert_camel_case(what: &str, v: &serde_json::Value) {
    let mut all = Vec::new();
    keys(v, &mut all);
    let snake: Vec<&String> = all.iter().filter(|k| k.contains('_')).collect();
    assert!(
        snake.is_empty(),
        "{what} has snake_case keys {snake:?}: {v}"
    );
}

fn json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["--output", "json"]);
    env.ferry(&a).ok().json()
}

#[test]
fn lists_are_items_and_keys_are_camel_case() {
    let env = applied();
    env.ferry(&["publish", "--tenant", T, "-m", "first"]).ok();
    for args in [
        &["tenant", "list"][..],
        &["user", "list"],
        &["steps"],
        &["publishes", "--tenant", T],
    ] {
        let v = json(&env, args);
        assert!(v["items"].is_array(), "{args:?}: {v}");
        assert_camel_case(&format!("{args:?}"), &v);
    }
    let tenants = json(&env, &["tenant", "list"]);
    assert!(tenants["items"][0].get("lastCommit").is_some(), "{tenants}");
    let log = json(&env, &["publishes", "--tenant", T]);
    assert!(log["items"][0]["changeTrackId"].is_string(), "{log}");
    assert!(log["items"][0]["publishedBy"].is_string(), "{log}");

    // A plan, a saved plan and a diff say camelCase too.
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    let plan = json(&env, &["plan", "--tenant", T]);
    assert!(plan["baseRevision"].is_u64(), "{plan}");
    assert_camel_case("plan", &plan);
    env.ferry(&["plan", "--tenant", T, "-o", "saved.json"]).ok();
    let saved: serde_json::Value = serde_json::from_str(&env.read("saved.json")).unwrap();
    assert_eq!(saved["format"], "ferry-plan/v2");
    assert!(saved["actions"][0]["payload"]["fileHash"].is_string());
    env.ferry(&["apply", "--plan", "saved.json", "--yes"]).ok();
    let diff = json(&env, &["diff", "--tenant", T]);
    assert_eq!(diff["hasChanges"], true, "{diff}");
    assert_camel_case("diff", &diff);
    // Users: each with its roles.
    env.ferry(&["--as", "ada", "user", "add", "ada"]).ok();
    env.ferry(&["--as", "ada", "user", "add", "bob"]).ok();
    env.ferry(&["--as", "ada", "grant", "bob", T, "editor"])
        .ok();
    let users = json(&env, &["user", "list"]);
    assert_eq!(users["items"][0]["name"], "ada");
    assert_eq!(users["items"][0]["owner"], true);
    assert_eq!(
        users["items"][1]["grants"],
        serde_json::json!([{"tenant": T, "role": "editor"}])
    );
}

#[test]
fn plan_and_revert_previews_share_action_names_and_before_after() {
    let env = applied();
    env.ferry(&["publish", "--tenant", T, "-m", "first"]).ok();
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    let plan = json(&env, &["plan", "--tenant", T]);
    let action = &plan["actions"][0];
    assert_eq!(action["action"], "UPDATE");
    let change = &action["changes"][0];
    assert!(change["before"].is_string() && change["after"].is_string());
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["publish", "--tenant", T, "-m", "brief"]).ok();
    let preview = json(&env, &["revert", "--tenant", T, "2", "--dry-run"]);
    let r = &preview["resources"][0];
    assert_eq!(r["action"], "UPDATE", "{preview}");
    let c = &r["changes"][0];
    assert_eq!(c["path"], "spec.instructions");
    assert!(c["before"].as_str().unwrap().contains("Be brief."), "{c}");
    assert!(!c["after"].as_str().unwrap().contains("Be brief."), "{c}");
    assert_eq!(preview["preview"], true);
    assert_camel_case("revert preview", &preview);
    // Text says the draft's action in words.
    let text = env.ferry(&["revert", "--tenant", T, "2", "--preview"]).ok();
    assert!(
        text.stdout.contains("Agent support-bot (update draft)"),
        "{}",
        text.stdout
    );
}

/// The one error shape: `{"error": {code, message, hint}}` on stdout, nothing else there.
fn error_of(r: &Run) -> serde_json::Value {
    let v = r.json();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v
}

#[test]
fn json_errors_are_the_error_shape_on_stdout_with_the_same_exit_codes() {
    let env = applied();
    // A missing tenant: exit 1, code as the server says it, hints kept.
    let r = env
        .ferry(&["plan", "--tenant", "acme-deb", "--output", "json"])
        .expect(1);
    let e = error_of(&r);
    assert_eq!(e["error"]["code"], "tenant_not_found");
    let hint = e["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("did you mean `acme-dev`?"), "{hint}");
    assert!(hint.contains("ferry tenant create acme-deb"), "{hint}");
    // A bad tree: the diagnostics come inside the error answer.
    env.write(
        "tenants/acme-dev/agents/support-bot.yaml",
        &env.read("tenants/acme-dev/agents/support-bot.yaml")
            .replace("- crm-lookup", "- crm-lokup"),
    );
    let r = env
        .ferry(&["plan", "--tenant", T, "--output", "json"])
        .expect(1);
    let e = error_of(&r);
    assert_eq!(e["error"]["code"], "invalid_tree");
    assert_eq!(e["valid"], false);
    assert_eq!(e["diagnostics"][0]["code"], "dangling-reference");
    assert_eq!(e["diagnostics"][0]["hint"], "did you mean `crm-lookup`?");
    env.ferry(&["export", "--tenant", T]).ok();
    // Nothing to publish: the same code and `hasChanges: false` as the API's 409.
    env.ferry(&["publish", "--tenant", T, "-m", "one"]).ok();
    let r = env
        .ferry(&["publish", "--tenant", T, "-m", "two", "--output", "json"])
        .expect(1);
    let e = error_of(&r);
    assert_eq!(e["error"]["code"], "nothing_to_publish");
    assert_eq!(e["hasChanges"], false);
    // A usage error: exit 2, code `usage`, clap's suggestion as the hint.
    let r = env.ferry(&["tenant", "lst", "--output", "json"]).expect(2);
    let e = error_of(&r);
    assert_eq!(e["error"]["code"], "usage");
    assert!(e["error"]["hint"].as_str().unwrap().contains("list"), "{e}");
    // Text mode is unchanged: the error on stderr, stdout empty.
    let r = env.ferry(&["plan", "--tenant", "acme-deb"]).expect(1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.starts_with("error: tenant `acme-deb`"),
        "{}",
        r.stderr
    );
}

#[test]
fn markdown_is_a_usage_error_where_there_is_no_markdown_form() {
    let env = applied();
    for args in [
        &["tenant", "list"][..],
        &["publishes", "--tenant", T],
        &["diff", "--tenant", T],
    ] {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--output", "markdown"]);
        let r = env.ferry(&a).expect(2);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("`--output markdown` is not available"),
            "{args:?}: {}",
            r.stderr
        );
    }
    env.ferry(&["plan", "--tenant", T, "--output", "markdown"])
        .ok();
}

#[test]
fn the_markdown_plan_is_a_line_diff_in_the_text_plans_words() {
    let env = applied();
    // A long block with one changed line in the middle.
    let long: String = (1..=12).map(|i| format!("    Rule {i}.\n")).collect();
    let rel = "tenants/acme-dev/agents/refund-bot.yaml";
    let text = env.read(rel);
    env.write(
        rel,
        &text.replace("    Handle refunds.\n    Be polite.\n", &long),
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.write(rel, &env.read(rel).replace("Rule 6.", "Rule six."));
    let md = env
        .ferry(&["plan", "--tenant", T, "--output", "markdown"])
        .ok()
        .stdout;
    assert!(
        md.contains("| create | update | unchanged | delete | conflict |"),
        "{md}"
    );
    assert!(!md.contains("skip"), "{md}");
    assert!(
        md.contains("<code>update</code> Agent <b>refund-bot</b>"),
        "{md}"
    );
    assert!(
        md.contains("```diff\n  Rule 5.\n- Rule 6.\n+ Rule six.\n  Rule 7.\n```"),
        "{md}"
    );
    assert!(!md.contains("Rule 1."), "only a little context: {md}");
    assert!(!md.contains("Rule 12."), "only a little context: {md}");
    // The text plan shows the same hunk.
    let text = env.ferry(&["plan", "--tenant", T]).ok().stdout;
    assert!(text.contains("- Rule 6."), "{text}");
    assert!(text.contains("+ Rule six."), "{text}");
    assert!(text.contains("    Rule 5."), "{text}");
    assert!(!text.contains("Rule 1."), "{text}");
}

#[test]
fn dry_run_and_preview_and_dash_o_are_accepted_everywhere() {
    let env = applied();
    env.ferry(&["publish", "--tenant", T, "-m", "first"]).ok();
    let zip_export = |extra: &[&str]| {
        let mut args = vec!["zip", "export", "--tenant", T, "--agent", "support-bot"];
        args.extend_from_slice(extra);
        env.ferry(&args).ok()
    };
    for flag in ["--dry-run", "--preview"] {
        env.ferry(&["revert", "--tenant", T, "1", flag]).ok();
        zip_export(&[flag]);
        // The folder's tenant.toml names the key of the one deleted last round.
        env.ferry(&["tenant", "create", "acme-staging", "--force"])
            .ok();
        env.ferry(&["promote", "--from", T, "--to", "acme-staging", flag])
            .ok();
        env.ferry(&["tenant", "delete", "acme-staging", "--yes"])
            .ok();
    }
    for command in [&["sync", "--help"][..], &["zip", "import", "--help"]] {
        let help = env.ferry(command).ok().stdout;
        assert!(
            help.contains("--preview") && help.contains("dry-run"),
            "{help}"
        );
    }
    // -o FILE wherever a command writes a file or folder.
    env.ferry(&["plan", "--tenant", T, "-o", "plan.json"]).ok();
    assert!(env.read("plan.json").contains("ferry-plan/v2"));
    zip_export(&["-o", "a.zip"]);
    assert!(env.path("a.zip").is_file());
    env.ferry(&["export", "--tenant", T, "-o", "out"]).ok();
    assert!(env.path("out/agents/support-bot.yaml").is_file());
    env.ferry(&["schemas", "-o", "s"]).ok();
    assert!(env.path("s").read_dir().unwrap().count() > 0);
}

#[test]
fn errors_suggest_the_fix() {
    let env = applied();
    let rel = "tenants/acme-dev/agents/support-bot.yaml";
    let good = env.read(rel);
    // A misspelled reference.
    env.write(rel, &good.replace("- crm-lookup", "- crm-lokup"));
    let r = env.ferry(&["validate", "--tenant", T]).expect(1);
    assert!(
        r.stderr.contains("Tool `crm-lokup` does not exist")
            && r.stderr.contains("hint: did you mean `crm-lookup`?"),
        "{}",
        r.stderr
    );
    // A misspelled field.
    env.write(rel, &good.replace("  instructions: |", "  instructons: |"));
    let r = env.ferry(&["validate", "--tenant", T]).expect(1);
    assert!(
        r.stderr.contains("unknown field `instructons`")
            && r.stderr.contains("hint: did you mean `instructions`?"),
        "{}",
        r.stderr
    );
    // A tab, on its line.
    let lines: Vec<&str> = good.lines().collect();
    let at = lines.iter().position(|l| *l == "  - crm-lookup").unwrap();
    env.write(
        rel,
        &good.replace("\n  - crm-lookup\n", "\n\t- crm-lookup\n"),
    );
    let r = env.ferry(&["validate", "--tenant", T]).expect(1);
    assert!(
        r.stderr
            .contains(&format!("agents/support-bot.yaml:{}:", at + 1))
            && r.stderr.contains("hint: YAML indents with spaces"),
        "{}",
        r.stderr
    );
    env.write(rel, &good);
    // A misspelled command.
    let r = env.ferry(&["plna"]).expect(2);
    assert!(r.stderr.contains("'plan'"), "{}", r.stderr);
    // A mistyped tenant: the closest one first, then `tenant create`.
    let r = env.ferry(&["plan", "--tenant", "acme-deb"]).expect(1);
    let closest = r.stderr.find("did you mean `acme-dev`?").unwrap();
    let create = r.stderr.find("ferry tenant create acme-deb").unwrap();
    assert!(closest < create, "{}", r.stderr);
    // A bad --ref: ferry's words, not libgit2's, and the closest branch.
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", "nosuchbranch"])
        .expect(1);
    assert!(
        r.stderr
            .contains("no branch, tag or commit named `nosuchbranch`"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("revspec"), "{}", r.stderr);
    let branch = env.git(&["branch", "--show-current"]);
    let typo = format!("{}x", branch.trim());
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", &typo])
        .expect(1);
    assert!(
        r.stderr
            .contains(&format!("did you mean `{}`?", branch.trim())),
        "{}",
        r.stderr
    );
    // A deleted file something still references: the referencing file and line.
    std::fs::remove_file(env.path("tenants/acme-dev/tools/crm-lookup.yaml")).unwrap();
    let r = env.ferry(&["plan", "--tenant", T]).expect(1);
    let at = good.lines().position(|l| l == "  - crm-lookup").unwrap() + 1;
    let line = r
        .stderr
        .lines()
        .position(|l| l.starts_with(&format!("error: agents/support-bot.yaml:{at}:")))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let said: Vec<&str> = r.stderr.lines().skip(line).take(2).collect();
    assert!(
        said[0].contains("Tool `crm-lookup` does not exist"),
        "{said:?}"
    );
    assert!(
        said.join("\n")
            .contains("tools/crm-lookup.yaml was deleted or renamed"),
        "{said:?}"
    );
    // The same when the referencing file was not read again (unchanged in the store).
    env.ferry(&["export", "--tenant", T]).ok();
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    std::fs::remove_file(env.path("tenants/acme-dev/tools/crm-lookup.yaml")).unwrap();
    let r = env.ferry(&["plan", "--tenant", T]).expect(1);
    assert!(
        r.stderr.contains(&format!(
            "error: agents/support-bot.yaml:{at}: Tool `crm-lookup` does not exist in this tenant (its file tools/crm-lookup.yaml was deleted or renamed)"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn the_demo_prints_pasteable_commands_and_its_server_log_in_order() {
    let env = TestEnv::empty();
    std::fs::create_dir_all(&env.repo).unwrap();
    let r = env.ferry(&["demo"]).ok();
    let err = &r.stderr;
    // Arguments with spaces or quotes are shell-quoted.
    assert!(
        err.contains("$ ferry publish --tenant acme-dev -m 'First release'"),
        "{err}"
    );
    assert!(
        err.contains("-m \"Answer in the customer's language\""),
        "{err}"
    );
    assert!(
        err.contains("$ git commit -m \"support-bot: answer in the customer's language\""),
        "{err}"
    );
    for line in err.lines().filter(|l| l.starts_with("$ ferry ")) {
        let words = shlex::split(&line[2..]).unwrap_or_default();
        assert!(!words.is_empty(), "not a shell line: {line}");
    }
    // Each request: the curl line, its status, then the server's log line for it.
    let lines: Vec<&str> = err.lines().collect();
    let curls: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("$ curl "))
        .collect();
    assert!(curls.len() >= 4, "{err}");
    for i in curls {
        assert!(lines[i + 1].starts_with("   HTTP "), "{}", lines[i + 1]);
        assert!(lines[i + 2].starts_with("   server: {"), "{}", lines[i + 2]);
        let path = lines[i]
            .split('"')
            .nth(1)
            .unwrap()
            .trim_start_matches("$BASE");
        assert!(
            lines[i + 2].contains(&format!("\"path\":\"{path}\"")),
            "{} / {}",
            lines[i],
            lines[i + 2]
        );
    }
    assert!(
        !err.lines().any(|l| l.starts_with("{\"ts\"")),
        "no stray log lines: {err}"
    );
}
