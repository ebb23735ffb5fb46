//! One identity and roles on every write (issue 9): the actor is resolved
//! once (`--as`, `FERRY_USER`, `ferry.toml`'s user, git's user name), the
//! same name is checked and recorded, a store without users is single-user
//! mode, and once it has users every write from the CLI or over HTTP checks
//! the role, refusing with the role needed and the shell-quoted grant.

use crate::common::*;

const T: &str = "acme-dev";

/// A repo with acme-dev applied from the small tree and committed, acme-staging created.
fn committed() -> TestEnv {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", T]).ok();
    env.ferry(&["tenant", "create", "acme-staging"]).ok();
    small_tree(&env, T);
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["export", "--tenant", T, "--commit", "-m", "initial tree"])
        .ok();
    env
}

/// [`committed`], published once, then with users: `root` (the owner) and
/// `vic` (a viewer of acme-dev); and the publish's change ID.
fn published_with_a_viewer() -> (TestEnv, String) {
    let env = committed();
    let publish1 = env
        .ferry(&["publish", "--tenant", T, "-m", "first", "--output", "json"])
        .ok()
        .json();
    let change = publish1["changeTrackId"].as_str().unwrap().to_string();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("vic", &[(T, "viewer")]);
    (env, change)
}

/// `ferry ARGS` with extra environment variables.
fn ferry_env(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = env.cmd();
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(args);
    run(c)
}

fn revision(env: &TestEnv) -> serde_json::Value {
    let tenants = env.tenants_as("root");
    tenants.iter().find(|t| t["name"] == T).unwrap()["revision"].clone()
}

fn refused(r: Run, role: &str, grant: &str) {
    let r = r.expect(1);
    assert!(
        r.stderr.contains(&format!("needs the {role} role")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("hint: {grant}")) || r.stderr.contains(grant),
        "{}",
        r.stderr
    );
}

#[test]
fn every_cli_write_checks_the_role_and_names_the_grant() {
    let (env, change) = published_with_a_viewer();
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    let zip = env.path("bot.zip");
    env.ferry(&[
        "--as",
        "root",
        "zip",
        "export",
        "--tenant",
        T,
        "--agent",
        "support-bot",
        "-o",
        zip.to_str().unwrap(),
    ])
    .ok();
    let before = revision(&env);
    let as_vic = |args: &[&str]| {
        let mut a = vec!["--as", "vic"];
        a.extend_from_slice(args);
        env.ferry(&a)
    };
    let grant = |role: &str| format!("ferry grant 'vic' {T} {role}");
    refused(
        as_vic(&["apply", "--tenant", T, "--yes"]),
        "editor",
        &grant("editor"),
    );
    refused(
        as_vic(&["export", "--tenant", T, "--commit", "-m", "x"]),
        "editor",
        &grant("editor"),
    );
    assert!(
        env.read("tenants/acme-dev/agents/support-bot.yaml")
            .contains("Be brief."),
        "a refused export --commit leaves the folder alone"
    );
    refused(
        as_vic(&["publish", "--tenant", T, "-m", "x"]),
        "admin",
        &grant("admin"),
    );
    refused(
        as_vic(&["revert", "--tenant", T, &change]),
        "editor",
        &grant("editor"),
    );
    refused(
        as_vic(&[
            "zip",
            "import",
            zip.to_str().unwrap(),
            "--tenant",
            T,
            "--strategy",
            "merge",
            "--yes",
        ]),
        "editor",
        &grant("editor"),
    );
    refused(
        as_vic(&[
            "zip",
            "import",
            zip.to_str().unwrap(),
            "--tenant",
            T,
            "--strategy",
            "merge",
            "--preview",
        ]),
        "editor",
        &grant("editor"),
    );
    refused(
        as_vic(&[
            "sync",
            "--tenant",
            T,
            "--source-url",
            "https://source.invalid",
            "--agent",
            "a",
        ]),
        "editor",
        &grant("editor"),
    );
    refused(
        as_vic(&["promote", "--from", T, "--to", "acme-staging"]),
        "admin",
        &grant("admin"),
    );
    refused(
        as_vic(&["grant", "vic", T, "owner"]),
        "owner",
        &grant("owner"),
    );
    let r = as_vic(&["token", "create", "--user", "root"]).expect(1);
    assert!(r.stderr.contains("needs a store owner"), "{}", r.stderr);
    assert_eq!(revision(&env), before, "nothing was written");
    assert!(!env.git(&["tag"]).contains("publish/2"));

    // A non-user is told the role and both commands, the name shell-quoted.
    let r = env
        .ferry(&["--as", "mallory o'neil", "apply", "--tenant", T, "--yes"])
        .expect(1);
    assert!(
        r.stderr.contains("is not a user of this store"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("needs the editor role on tenant `acme-dev`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("ferry user add 'mallory o'\\''neil'")
            && r.stderr
                .contains("ferry grant 'mallory o'\\''neil' acme-dev editor"),
        "{}",
        r.stderr
    );

    // An editor writes drafts and may not publish; the grant makes the difference.
    env.user("ed", &[(T, "editor")]);
    env.ferry(&["--as", "ed", "apply", "--tenant", T, "--yes"])
        .ok();
    refused(
        env.ferry(&["--as", "ed", "publish", "--tenant", T, "-m", "x"]),
        "admin",
        &format!("ferry grant 'ed' {T} admin"),
    );
    env.ferry(&["--as", "root", "grant", "ed", T, "admin"]).ok();
    env.ferry(&["--as", "ed", "publish", "--tenant", T, "-m", "now"])
        .ok();
}

#[test]
fn single_user_mode_allows_every_write_and_records_the_actor() {
    let env = committed();
    let r = ferry_env(&env, &[("FERRY_USER", "zoe")], &["user", "list"]).ok();
    assert!(r.stdout.contains("No users"), "{}", r.stdout);
    let p = ferry_env(
        &env,
        &[("FERRY_USER", "zoe")],
        &["publish", "--tenant", T, "-m", "solo", "--output", "json"],
    )
    .ok()
    .json();
    assert_eq!(p["publishedBy"], "zoe");
    let tag = env.git(&["cat-file", "-p", "acme-dev/publish/1"]);
    assert!(tag.contains("published_by: zoe"), "{tag}");
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    env.ferry(&["--as", "anyone", "apply", "--tenant", T, "--yes"])
        .ok();
}

#[test]
fn one_actor_is_checked_and_recorded_in_the_documented_order() {
    let env = committed();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("ada", &[(T, "admin")]);
    env.user("vic", &[(T, "viewer")]);
    // FERRY_USER beats git's user name (GIT_AUTHOR_NAME is `Test User`, not a user).
    let p = ferry_env(
        &env,
        &[("FERRY_USER", "ada")],
        &["publish", "--tenant", T, "-m", "as ada", "--output", "json"],
    )
    .ok()
    .json();
    assert_eq!(
        p["publishedBy"], "ada",
        "the checked name is the recorded one"
    );
    // --as beats FERRY_USER: vic is checked (and refused), not ada.
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be brief.");
    let r = ferry_env(
        &env,
        &[("FERRY_USER", "ada")],
        &["--as", "vic", "apply", "--tenant", T, "--yes"],
    );
    refused(r, "editor", "ferry grant 'vic' acme-dev editor");
    // ferry.toml's user comes after FERRY_USER and before git's.
    let cfg = env.read("ferry.toml");
    env.write("ferry.toml", &format!("user = \"vic\"\n{cfg}"));
    refused(
        env.ferry(&["apply", "--tenant", T, "--yes"]),
        "editor",
        "ferry grant 'vic' acme-dev editor",
    );
    ferry_env(
        &env,
        &[("FERRY_USER", "ada")],
        &["apply", "--tenant", T, "--yes"],
    )
    .ok();
    // git's user name last: Test User is no user of the store.
    env.write("ferry.toml", &cfg);
    env.edit_first_instruction_line("tenants/acme-dev/agents/support-bot.yaml", " Be kind.");
    let r = env.ferry(&["apply", "--tenant", T, "--yes"]).expect(1);
    assert!(
        r.stderr.contains("`Test User` is not a user"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_http_publish_tags_git_after_recording_it() {
    let env = committed();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some(T));
    let server = Server::start(&env, &[]);
    let p = http_json(
        "POST",
        &server.url("/api/v2/agents/support-bot/publish"),
        Some(&token),
        &serde_json::json!({"message": "over http"}),
    )
    .expect(200);
    assert_eq!(p["tag"], "acme-dev/publish/1", "{p}");
    assert_eq!(p["publishedBy"], "root");
    assert_eq!(
        env.git(&["cat-file", "-t", "acme-dev/publish/1"]).trim(),
        "tag"
    );
    let tag = env.git(&["cat-file", "-p", "acme-dev/publish/1"]);
    assert!(
        tag.contains("published_by: root") && tag.contains("over http"),
        "{tag}"
    );
    assert_eq!(
        env.git(&["rev-list", "-n1", "acme-dev/publish/1"]).trim(),
        env.git(&["rev-parse", "HEAD"]).trim()
    );
    let list = env
        .ferry(&[
            "--as",
            "root",
            "publishes",
            "--tenant",
            T,
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(list["items"][0]["tag"], "acme-dev/publish/1");
}

#[test]
fn a_zip_import_is_one_transaction_refused_when_stale() {
    let env = committed();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some("acme-prod"));
    let zip = env.path("bot.zip");
    env.ferry(&[
        "--as",
        "root",
        "zip",
        "export",
        "--tenant",
        T,
        "--agent",
        "support-bot",
        "-o",
        zip.to_str().unwrap(),
    ])
    .ok();
    let bytes = std::fs::read(&zip).unwrap();
    let server = Server::start(&env, &[]);
    let upload = |path: &str| {
        http(
            "POST",
            &server.url(path),
            Some(&token),
            &[],
            Some(("application/zip", &bytes)),
        )
    };
    let preview = upload("/backup/import/preview?strategy=create").expect(200);
    let base = preview["baseRevision"]
        .as_u64()
        .expect("the preview names its base");
    // The tenant moves after the preview (another import), so the previewed import is stale.
    upload("/backup/import?strategy=create").expect(200);
    let list = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    let prod = |list: &serde_json::Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "acme-prod")
            .unwrap()
            .clone()
    };
    let moved = prod(&list);
    assert_ne!(moved["revision"].as_u64().unwrap(), base);
    let stale = upload(&format!(
        "/backup/import?strategy=merge&baseRevision={base}"
    ));
    assert_eq!(
        stale.status,
        409,
        "{}",
        String::from_utf8_lossy(&stale.body)
    );
    assert_eq!(stale.json()["error"]["code"], "stale");
    let after = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(prod(&after), moved, "a refused import changes nothing");
    // At the current base it goes through.
    let now = moved["revision"].as_u64().unwrap();
    upload(&format!("/backup/import?strategy=merge&baseRevision={now}")).expect(200);
}

#[test]
fn live_sync_lists_and_previews_and_zip_import_previews_need_the_editor_role() {
    let env = committed();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("vic", &[(T, "viewer")]);
    let token = env.token("vic", Some(T));
    let zip = env.path("bot.zip");
    env.ferry(&[
        "--as",
        "root",
        "zip",
        "export",
        "--tenant",
        T,
        "--agent",
        "support-bot",
        "-o",
        zip.to_str().unwrap(),
    ])
    .ok();
    let bytes = std::fs::read(&zip).unwrap();
    let server = Server::start(&env, &[]);
    let src = "sourceUrl=https%3A%2F%2Fsource.invalid";
    for (method, path) in [
        ("GET", format!("/backup/import/sync/agents?{src}")),
        (
            "POST",
            format!("/backup/import/sync/preview?{src}&sourceAgentId=a"),
        ),
    ] {
        let a = http(method, &server.url(&path), Some(&token), &[], None);
        assert_eq!(
            a.status,
            403,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let v = a.json();
        assert!(
            v["error"]["message"].as_str().unwrap().contains("editor"),
            "{v}"
        );
        assert!(
            v["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("ferry grant 'vic' acme-dev editor"),
            "{v}"
        );
    }
    let a = http(
        "POST",
        &server.url("/backup/import/preview"),
        Some(&token),
        &[],
        Some(("application/zip", &bytes)),
    );
    assert_eq!(a.status, 403);
    // Reads stay open to a viewer.
    http(
        "GET",
        &server.url("/api/v2/agents"),
        Some(&token),
        &[],
        None,
    )
    .expect(200);
}

#[test]
pub fn tenant_delete_needs_an_owner_of_the_tenant() {
    let env = committed();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("ada", &[(T, "admin")]);
    env.user("olga", &[(T, "owner")]);
    // An admin is refused, with or without --yes: the role is checked before it asks.
    for args in [
        &["tenant", "delete", T][..],
        &["tenant", "delete", T, "--yes"],
    ] {
        let mut a = vec!["--as", "ada"];
        a.extend_from_slice(args);
        refused(
            env.ferry(&a),
            "owner",
            &format!("ferry grant 'ada' {T} owner"),
        );
    }
    // An owner of another tenant is not an owner of this one.
    refused(
        env.ferry(&["--as", "olga", "tenant", "delete", "acme-staging", "--yes"]),
        "owner",
        "ferry grant 'olga' acme-staging owner",
    );
    let list = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        2,
        "nothing was deleted: {list}"
    );
    let r = env
        .ferry(&["--as", "olga", "tenant", "delete", T, "--yes"])
        .ok();
    assert!(r.stdout.contains("Deleted tenant acme-dev"), "{}", r.stdout);
    env.ferry(&["--as", "root", "tenant", "delete", "acme-staging", "--yes"])
        .ok();
    let list = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
}

#[test]
pub fn tenant_create_needs_a_store_owner_once_there_are_users() {
    let env = committed();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("olga", &[(T, "owner")]);
    // An owner of one tenant is not an owner of the store: nothing is created.
    let r = env
        .ferry(&["--as", "olga", "tenant", "create", "acme-qa"])
        .expect(1);
    assert!(
        r.stderr
            .contains("creating tenants needs a store owner, and `olga` is not one"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: only the store's owner (its first user) may do this"),
        "{}",
        r.stderr
    );
    assert!(
        !env.path("tenants/acme-qa").exists(),
        "no folder is written"
    );
    let list = env
        .ferry(&["--as", "root", "tenant", "list", "--output", "json"])
        .ok()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // A bad name is refused before the store is opened, for anyone.
    let r = env
        .ferry(&["--as", "root", "tenant", "create", "Acme QA"])
        .expect(1);
    assert!(
        r.stderr.contains("tenant name `Acme QA` must be"),
        "{}",
        r.stderr
    );
    env.ferry(&["--as", "root", "tenant", "create", "acme-qa"])
        .ok();
    assert!(env.path("tenants/acme-qa/tenant.toml").exists());
}

/// Reads check the role too, in the library, whichever front end asks: on
/// a store with users, someone without a role on the tenant is refused
/// every CLI read (plans from the folder and from git, the staging diff,
/// the publish history, a revert preview, exports into a folder and into a
/// ZIP), told the grant, and nothing is written; a viewer reads all of them.
#[test]
fn every_cli_read_needs_the_viewer_role() {
    let (env, change) = published_with_a_viewer();
    env.user("eve", &[("acme-staging", "owner")]);
    let (out, zip) = (env.path("exported"), env.path("t.zip"));
    let (out, zip) = (out.to_str().unwrap(), zip.to_str().unwrap());
    let reads: [&[&str]; 8] = [
        &["plan", "--tenant", T],
        &["plan", "--tenant", T, "--ref", "HEAD"],
        &["diff", "--tenant", T],
        &["publishes", "--tenant", T],
        &["revert", "--tenant", T, &change, "--preview"],
        &["export", "--tenant", T, "--out", out],
        &["zip", "export", "--tenant", T, "--all", "-o", zip],
        &[
            "zip",
            "export",
            "--tenant",
            T,
            "--agent",
            "support-bot",
            "--preview",
        ],
    ];
    let before = revision(&env);
    for read in reads {
        let as_eve = [&["--as", "eve"][..], read].concat();
        refused(
            env.ferry(&as_eve),
            "viewer",
            &format!("ferry grant 'eve' {T} viewer"),
        );
        assert!(!env.path("exported").exists() && !env.path("t.zip").exists());
    }
    assert_eq!(revision(&env), before, "nothing was written");
    for read in reads {
        env.ferry(&[&["--as", "vic"][..], read].concat()).ok();
    }
    assert!(env.path("exported").join("agents").is_dir() && env.path("t.zip").is_file());

    // A viewer's apply is refused before the tree is planned or shown.
    let r = env.ferry(&["--as", "vic", "apply", "--tenant", T, "--yes"]);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    refused(r, "editor", &format!("ferry grant 'vic' {T} editor"));
}

/// `ferry tenant list` shows what `GET /api/tenants` shows: on a store with
/// users, only the tenants the actor holds a role on, with the role; a
/// store owner sees them all, and someone with no role is told why the
/// list is empty.
#[test]
fn the_tenant_list_shows_the_tenants_the_actor_holds_a_role_on() {
    let (env, _) = published_with_a_viewer();
    let names = |who: &str| -> Vec<(String, String)> {
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
        let tenants = env.tenants_as(who);
        tenants
            .iter()
            .map(|t| (text(&t["name"]), text(&t["role"])))
            .collect()
    };
    assert_eq!(names("vic"), [(T.to_string(), "viewer".to_string())]);
    let all = names("root");
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|(_, role)| role == "owner"), "{all:?}");
    env.ferry(&["--as", "root", "user", "add", "nobody"]).ok();
    let r = env.ferry(&["--as", "nobody", "tenant", "list"]).ok();
    assert!(r.stdout.contains("No tenants."), "{}", r.stdout);
    assert!(
        r.stderr.contains("holds no role on the store's tenants"),
        "{}",
        r.stderr
    );
}
