//! Staging edits made through the library are what the CLI sees: `diff
//! --agent`, `publish --agent` and `revert` work on them, and unknown names
//! keep the CLI's messages.

use crate::common::*;
use ferry::service::access::Actor;
use ferry::service::staging::{apply_edit, StagingEdit};

const T: &str = "acme-dev";

#[test]
pub fn a_library_edit_is_diffed_published_and_reverted_by_the_cli() {
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["publish", "--tenant", T, "-m", "first"]).ok();
    {
        let mut store = env.open_store();
        let before = store.revision().unwrap();
        let out = apply_edit(
            store.as_mut(),
            T,
            "billing-bot",
            &StagingEdit::SetAccess {
                access: "public".into(),
            },
        )
        .unwrap();
        assert!(out.changed);
        assert!(out.revision > before);
    }
    let d = env
        .ferry(&[
            "diff",
            "--tenant",
            T,
            "--agent",
            "billing-bot",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(d["hasChanges"], true);
    let change = &d["resources"][0]["changes"][0];
    assert_eq!(change["path"], "spec.access");
    assert_eq!(change["production"], "team");
    assert_eq!(change["staging"], "public");
    let p = env
        .ferry(&[
            "publish",
            "--tenant",
            T,
            "--agent",
            "billing-bot",
            "-m",
            "open up",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let chg = p["changeTrackId"].as_str().unwrap().to_string();
    let r = env
        .ferry(&["revert", "--yes", "--tenant", T, &chg, "--output", "json"])
        .ok()
        .json();
    assert_eq!(r["written"], true);
    let d = env
        .ferry(&["diff", "--tenant", T, "--output", "json"])
        .ok()
        .json();
    assert_eq!(d["resources"][0]["changes"][0]["staging"], "team");
    let bad = env
        .ferry(&["diff", "--tenant", T, "--agent", "nobody"])
        .expect(1);
    assert!(
        bad.stderr
            .contains("agent `nobody` is neither in staging nor in production"),
        "{}",
        bad.stderr
    );
    let bad = env
        .ferry(&["revert", "--yes", "--tenant", T, "chg_nope"])
        .expect(1);
    assert!(
        bad.stderr
            .contains("has no publish with change id `chg_nope`")
            && bad
                .stderr
                .contains("`ferry publishes --tenant acme-dev` lists them"),
        "{}",
        bad.stderr
    );
}

/// `GET /api/v2/agents/{id}`: the draft revision, who created the agent and
/// who last changed it and when, the production version and every published
/// version (number, change ID, who, when), after an edit and a publish.
#[test]
pub fn the_agent_answer_holds_its_revision_authors_and_published_versions() {
    let env = TestEnv::acme();
    env.ferry(&["--as", "carol", "apply", "--tenant", T, "--yes"])
        .ok();
    env.user("root", &[]);
    env.user("ed", &[(T, "editor")]);
    env.user("ada", &[(T, "admin")]);
    let ed = env.token("ed", Some(T));
    let ada = env.token("ada", Some(T));
    let server = Server::start(&env, &[]);
    let url = server.url("/api/v2/agents/billing-bot");
    let get = || http("GET", &url, Some(&ed), &[], None).expect(200);

    let fresh = get();
    assert_eq!(fresh["name"], "billing-bot");
    assert_eq!(fresh["draftRevision"], 1, "{fresh}");
    assert_eq!(fresh["createdBy"], "carol", "{fresh}");
    assert_eq!(fresh["lastChangedBy"], "carol", "{fresh}");
    assert!(fresh["lastChangedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(fresh["productionVersion"], serde_json::Value::Null);
    assert_eq!(fresh["versions"], serde_json::json!([]));

    http_json(
        "PUT",
        &url,
        Some(&ed),
        &serde_json::json!({"description": "Bills"}),
    )
    .expect(200);
    let edited = get();
    assert_eq!(edited["draftRevision"], 2, "{edited}");
    assert_eq!(edited["createdBy"], "carol");
    assert_eq!(edited["lastChangedBy"], "ed");
    assert!(edited["lastChangedAt"].as_str().unwrap() >= fresh["lastChangedAt"].as_str().unwrap());
    assert_eq!(edited["spec"]["description"], "Bills");

    let published = http_json(
        "POST",
        &server.url("/api/v2/agents/billing-bot/publish"),
        Some(&ada),
        &serde_json::json!({"message": "bills"}),
    )
    .expect(200);
    let after = get();
    assert_eq!(after["productionVersion"], 1, "{after}");
    assert_eq!(
        after["draftRevision"], 2,
        "a publish leaves the draft as it is"
    );
    let versions = after["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{after}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["changeTrackId"], published["changeTrackId"]);
    assert_eq!(versions[0]["publishedBy"], "ada");
    assert!(versions[0]["publishedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(after["lastChangedBy"], "ed");

    // The answer holds what /openapi.json says it does.
    let doc = http("GET", &server.url("/openapi.json"), None, &[], None).expect(200);
    let schema = &doc["paths"]["/api/v2/agents/{agent_id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let has_all = |value: &serde_json::Value, schema: &serde_json::Value| {
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| value.get(k.as_str().unwrap()).is_some())
    };
    assert!(has_all(&after, schema), "{after} against {schema}");
    assert!(has_all(
        &versions[0],
        &schema["properties"]["versions"]["items"]
    ));
}

/// Document 003's SharePoint folder endpoints: staging edits of the agent's
/// folder connection, shown by the staging diff, made production by a
/// publish, written to the tree by an export; bad input is a 400 naming the
/// field and changes nothing; a viewer is refused.
#[test]
pub fn the_sharepoint_folder_is_created_updated_and_deleted_in_staging() {
    let (env, root) = crate::serve::acme_server_env();
    env.user("vera", &[(T, "viewer")]);
    let vera = env.token("vera", Some(T));
    let server = Server::start(&env, &[]);
    let t = Some(root.as_str());
    let folder = server.url("/api/v2/agents/billing-bot/sharepoint/folder");
    let agent = || {
        http(
            "GET",
            &server.url("/api/v2/agents/billing-bot"),
            t,
            &[],
            None,
        )
        .expect(200)
    };
    let url = "https://acme.sharepoint.com/sites/billing/Shared%20Documents/faq";
    let staging_diff = || {
        let diff = server.url("/api/v2/agents/billing-bot/staging-diff");
        http("GET", &diff, t, &[], None).expect(200)
    };

    // Bad input: each a 400 naming the field, and the store is as it was.
    let revision = |env: &TestEnv| env.open_store().revision().unwrap();
    let before = revision(&env);
    for (body, field) in [
        (serde_json::json!({}), "sharepointFolder.folderUrl"),
        (
            serde_json::json!({"name": "FAQ"}),
            "sharepointFolder.folderUrl",
        ),
        (
            serde_json::json!({"folderUrl": 7}),
            "sharepointFolder.folderUrl",
        ),
        (
            serde_json::json!({"folderUrl": url, "colour": "red"}),
            "sharepointFolder.colour",
        ),
    ] {
        let e = http_json("POST", &folder, t, &body).expect(400);
        assert_eq!(e["field"], field, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    let e = http_json(
        "POST",
        &folder,
        t,
        &serde_json::json!({"folderUrl": "http://acme.sharepoint.com/x"}),
    )
    .expect(400);
    assert_eq!(
        e["problems"][0]["field"], "spec.sharepointFolder.folderUrl",
        "{e}"
    );
    let e = http(
        "PUT",
        &folder,
        t,
        &[],
        Some(("application/json", b"{\"name\": \"x\"}")),
    )
    .expect(404);
    assert_eq!(e["error"]["code"], "sharepoint_folder_not_found", "{e}");
    http("DELETE", &folder, t, &[], None).expect(404);
    // A viewer may not.
    let refused = http_json(
        "POST",
        &folder,
        Some(&vera),
        &serde_json::json!({"folderUrl": url}),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(revision(&env), before, "a refused edit changed the store");
    assert!(agent()["spec"].get("sharepointFolder").is_none());

    // Create, then the diff shows it.
    let made = http_json(
        "POST",
        &folder,
        t,
        &serde_json::json!({"folderUrl": url, "name": "Billing FAQ"}),
    )
    .expect(200);
    assert_eq!(made["changed"], true, "{made}");
    assert_eq!(
        agent()["spec"]["sharepointFolder"],
        serde_json::json!({"folderUrl": url, "name": "Billing FAQ"})
    );
    let again = http_json("POST", &folder, t, &serde_json::json!({"folderUrl": url}));
    assert_eq!(
        again.status,
        409,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let diff = staging_diff();
    assert_eq!(diff["hasChanges"], true);
    let text = diff.to_string();
    // The UI's side-by-side diff shows it too.
    let page = UiSession::sign_in(&server, &root)
        .get(&server, "/t/acme-dev/agents/billing-bot/diff")
        .text();
    assert!(
        page.contains("sharepointFolder") && page.contains(url),
        "{page}"
    );
    assert!(
        text.contains("sharepointFolder") && text.contains(url),
        "{diff}"
    );

    // Update: a merge patch of its fields.
    http_json(
        "PUT",
        &folder,
        t,
        &serde_json::json!({"includeSubfolders": false, "name": null}),
    )
    .expect(200);
    assert_eq!(
        agent()["spec"]["sharepointFolder"],
        serde_json::json!({"folderUrl": url, "includeSubfolders": false})
    );

    // A publish makes it production; the tree gets it from an export.
    http_json(
        "POST",
        &server.url("/api/v2/agents/billing-bot/publish"),
        t,
        &serde_json::json!({"message": "faq"}),
    )
    .expect(200);
    let clean = staging_diff();
    assert_eq!(clean["hasChanges"], false, "{clean}");
    let production = {
        let store = env.open_store();
        let id = store
            .index(T)
            .unwrap()
            .1
            .entries()
            .iter()
            .find(|e| e.name == "billing-bot")
            .unwrap()
            .id
            .clone();
        store.production_of(T, &[id]).unwrap().pop().unwrap()
    };
    assert!(production.spec.to_json()["sharepointFolder"]["folderUrl"] == url);
    env.ferry(&["--as", "root", "export", "--tenant", T]).ok();
    let yaml = env.read("tenants/acme-dev/agents/billing-bot.yaml");
    assert!(
        yaml.contains("sharepointFolder:") && yaml.contains("includeSubfolders: false"),
        "{yaml}"
    );
    env.ferry(&["--as", "root", "validate", "--tenant", T]).ok();

    // Delete: staging drops it, the diff shows production's folder going.
    http("DELETE", &folder, t, &[], None).expect(200);
    assert!(agent()["spec"].get("sharepointFolder").is_none());
    let diff = staging_diff();
    assert_eq!(diff["hasChanges"], true, "{diff}");
    assert!(diff.to_string().contains("sharepointFolder"), "{diff}");
}

/// The server's staging diff cache, on SQLite here and on PostgreSQL in
/// `postgres.rs` (both keep a staging stamp).
#[test]
fn the_staging_diff_is_rendered_again_only_when_the_sqlite_store_moves() {
    the_staging_diff_is_rendered_again_only_when_the_store_moves();
}

/// The server's staging diff cache, on a store that keeps a staging stamp:
/// a diff is rendered once and then served as it is while the store
/// stands still; an edit, and a publish (which does not move the tenant
/// revision), each make it render again, with what changed.
pub fn the_staging_diff_is_rendered_again_only_when_the_store_moves() {
    use ferry::service::publishing::StagingDiffCache;
    use std::cell::Cell;
    let env = TestEnv::acme();
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    let cache = StagingDiffCache::default();
    let renders = Cell::new(0);
    let diff_of = |store: &dyn ferry::backend::store::Store| -> String {
        let bytes = cache
            .rendered::<ferry::service::staging::StagingError>(
                store,
                &Actor::default(),
                T,
                None,
                |d| {
                    renders.set(renders.get() + 1);
                    Ok(serde_json::to_vec(&(d.has_changes, d.resources.len())).unwrap())
                },
            )
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let mut store = env.open_store();
    assert!(store.staging_stamp(T).unwrap().is_some(), "no stamp kept");
    let first = diff_of(store.as_ref());
    assert_eq!(diff_of(store.as_ref()), first);
    assert_eq!(diff_of(store.as_ref()), first);
    assert_eq!(
        renders.get(),
        1,
        "served from the cache while nothing moved"
    );

    env.ferry(&["publish", "--tenant", T, "-m", "first"]).ok();
    let published = diff_of(store.as_ref());
    assert_eq!(renders.get(), 2, "a publish renders again");
    assert_ne!(published, first);
    assert_eq!(published, "[false,0]");

    apply_edit(
        store.as_mut(),
        T,
        "billing-bot",
        &StagingEdit::SetAccess {
            access: "public".into(),
        },
    )
    .unwrap();
    assert_eq!(diff_of(store.as_ref()), "[true,1]");
    assert_eq!(diff_of(store.as_ref()), "[true,1]");
    assert_eq!(renders.get(), 3, "an edit renders again, once");
}

/// `fixtures/acme` with 230 more tools (`extra-0000` onwards) applied as
/// acme-dev, a root token for it, and a server over it.
pub fn many_tools_served() -> (TestEnv, String, Server) {
    let env = TestEnv::acme();
    let tools = env.path("tenants/acme-dev/tools");
    for i in 0..230 {
        let text = format!(
            "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: extra-{i:04}\nspec:\n  type: http\n"
        );
        std::fs::write(tools.join(format!("extra-{i:04}.yaml")), text).unwrap();
    }
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    let token = env.token("root", Some("acme-dev"));
    let server = Server::start(&env, &[]);
    (env, token, server)
}

/// A tenant with more resources than a page shows: the resource list shows
/// each kind's first page with its count and pages through one kind by
/// name; the agent editor offers the agent's own tools and the first 50
/// others, with a field to add any other by name.
#[test]
fn big_tenants_are_listed_and_offered_a_page_at_a_time() {
    let (_env, token, server) = many_tools_served();
    let ui = UiSession::sign_in(&server, &token);
    let rows = |page: &str| page.matches("<tr data-name=\"extra-").count();

    let list = ui.get(&server, "/t/acme-dev?q=extra").text();
    assert_eq!(rows(&list), 100, "the first page of tools");
    assert!(list.contains("Showing 1–100 of 230."), "{list}");
    assert!(list.contains("extra-0099") && !list.contains("extra-0100"));
    let third = ui
        .get(&server, "/t/acme-dev?q=extra&kind=tools&page=2")
        .text();
    assert_eq!(rows(&third), 30);
    assert!(third.contains("Showing 201–230 of 230."), "{third}");
    assert!(third.contains("extra-0200") && third.contains("extra-0229"));
    assert!(third.contains("rel=\"prev\"") && !third.contains("rel=\"next\""));
    let past = ui
        .get(&server, "/t/acme-dev?q=extra&kind=tools&page=9")
        .text();
    assert_eq!(rows(&past), 0);
    assert!(past.contains("past the last of 230"), "{past}");
    let every = ui.get(&server, "/t/acme-dev").text();
    assert!(
        every.contains("support-bot"),
        "other kinds are still listed"
    );

    let editor = ui.get(&server, "/t/acme-dev/agents/support-bot").text();
    let own = http(
        "GET",
        &server.url("/api/v2/agents/support-bot"),
        Some(&token),
        &[],
        None,
    );
    let own = own.expect(200)["spec"]["tools"].as_array().unwrap().len();
    let boxes = editor.matches("name=\"tools\" value=").count();
    assert_eq!(boxes, own + 50, "its own tools, then the first 50 others");
    assert!(
        editor.contains("more in this tenant: add by name"),
        "{editor}"
    );
    assert!(!editor.contains("value=\"extra-0229\""), "not offered");
}
