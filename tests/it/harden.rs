//! Hardening (issue 14): links and other non-regular files in every tree
//! reader, bounded reads, hostile ZIPs, values that only look encrypted,
//! credential shapes in any string, control characters, non-finite numbers.

use std::time::Duration;

use crate::common::{run, TestEnv};

const T: &str = "acme-dev";
const DEV: &str = "tenants/acme-dev";

/// `ferry ARGS` with a generous limit, so that a hang fails instead of blocking the suite.
fn ferry_bounded(env: &TestEnv, args: &[&str]) -> crate::common::Run {
    let mut c = env.cmd();
    c.args(args).timeout(Duration::from_secs(120));
    run(c)
}

/// How many resources the store holds for `tenant`.
pub fn resources_of(env: &TestEnv, tenant: &str) -> u64 {
    let list = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .json();
    let arr = ["tenants", "items"]
        .iter()
        .find_map(|k| list[k].as_array().cloned())
        .or_else(|| list.as_array().cloned())
        .unwrap();
    arr.iter().find(|t| t["name"] == tenant).unwrap()["resources"]
        .as_u64()
        .unwrap()
}

fn symlink(target: &std::path::Path, link: &std::path::Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn symlinks_in_a_tenant_folder_are_refused_naming_the_path() {
    let env = TestEnv::acme();
    let outside = env.tmp.path().join("passwd");
    std::fs::write(&outside, "root:x:0:0:SECRET-OUTSIDE-THE-TREE\n").unwrap();
    symlink(
        &outside,
        &env.path(&format!("{DEV}/documents/billing-faq.md")),
    );
    let evil = env.tmp.path().join("evil.yaml");
    std::fs::write(
        &evil,
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: evil\nspec:\n  type: http\n  connection: crm\n  request:\n    method: GET\n    path: /x\n",
    )
    .unwrap();
    symlink(&evil, &env.path(&format!("{DEV}/tools/evil.yaml")));
    symlink(
        env.tmp.path(),
        &env.path(&format!("{DEV}/documents/linked-dir")),
    );

    let r = env.ferry(&["validate", "--tenant", T]).expect(1);
    for p in [
        "documents/billing-faq.md",
        "tools/evil.yaml",
        "documents/linked-dir",
    ] {
        assert!(r.stderr.contains(p), "{p} not named:\n{}", r.stderr);
    }
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRET-OUTSIDE"), "{}", r.stderr);

    env.ferry(&["apply", "--tenant", T, "--yes"]).expect(1);
    assert_eq!(resources_of(&env, T), 0, "nothing applied");

    let r = env
        .ferry(&["zip", "pack", DEV, "--out", "packed.zip"])
        .expect(1);
    assert!(
        r.stderr.contains("documents/billing-faq.md"),
        "{}",
        r.stderr
    );
    assert!(!env.path("packed.zip").exists(), "no ZIP is written");
}

#[test]
fn fifos_and_devices_in_a_tree_fail_without_hanging() {
    let env = TestEnv::acme();
    let fifo = env.path(&format!("{DEV}/agents/fifo.yaml"));
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    symlink(
        std::path::Path::new("/dev/zero"),
        &env.path(&format!("{DEV}/agents/zero.yaml")),
    );
    let r = ferry_bounded(&env, &["validate", "--tenant", T]).expect(1);
    assert!(r.stderr.contains("agents/fifo.yaml"), "{}", r.stderr);
    assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
    assert!(r.stderr.contains("agents/zero.yaml"), "{}", r.stderr);
    let r = ferry_bounded(&env, &["zip", "pack", DEV, "--out", "p.zip"]).expect(1);
    assert!(r.stderr.contains("agents/"), "{}", r.stderr);
}

#[test]
fn git_links_and_submodules_are_refused_naming_the_path() {
    let env = TestEnv::acme();
    env.git(&["init", "-q"]);
    symlink(
        std::path::Path::new("/etc/passwd"),
        &env.path(&format!("{DEV}/documents/billing-faq.md")),
    );
    env.git(&["add", "-A"]);
    env.git(&["commit", "-q", "-m", "fixture"]);
    let commit = env.git(&["rev-parse", "HEAD"]).trim().to_string();
    env.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{commit},{DEV}/tools/vendored"),
    ]);
    env.git(&["commit", "-q", "-m", "a submodule"]);
    let r = env
        .ferry(&["plan", "--tenant", T, "--ref", "HEAD"])
        .expect(1);
    assert!(
        r.stderr.contains("documents/billing-faq.md"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert!(r.stderr.contains("tools/vendored"), "{}", r.stderr);
    assert!(r.stderr.contains("submodule"), "{}", r.stderr);
}
