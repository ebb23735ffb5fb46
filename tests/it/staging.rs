//! Staging edits made through the library are what the CLI sees: `diff
//! --agent`, `publish --agent` and `revert` work on them, and unknown names
//! keep the CLI's messages.

use crate::common::*;
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
