//! The README's five-minute tour, run verbatim: every ```sh block of the
//! "A five-minute tour" section, in order, in one bash, in a temporary
//! folder, with the freshly built `ferry` first on PATH. The README cannot
//! rot without this test failing.

use crate::common::project_root;

/// The ```sh blocks of the section that starts with `heading`, up to the next `## ` heading.
pub fn shell_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no `{heading}`"));
    let rest = &readme[start + heading.len()..];
    let section = match rest.find("\n## ") {
        Some(end) => &rest[..end],
        None => rest,
    };
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_tour_runs_verbatim() {
    let readme = std::fs::read_to_string(project_root().join("README.md")).unwrap();
    let blocks = shell_blocks(&readme, "## A five-minute tour");
    assert!(
        blocks.len() >= 5,
        "the tour has {} shell blocks",
        blocks.len()
    );
    let bin = assert_cmd::cargo::cargo_bin("ferry");
    let bin_dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut script = String::from("set -euo pipefail\n");
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '>>> tour block {}' >&2\n{b}", i + 1));
    }
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(tmp.path())
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("HOME", tmp.path())
        .env("GIT_AUTHOR_NAME", "ferry-ci")
        .env("GIT_AUTHOR_EMAIL", "ferry-ci@example.invalid")
        .env("GIT_COMMITTER_NAME", "ferry-ci")
        .env("GIT_COMMITTER_EMAIL", "ferry-ci@example.invalid")
        .env_remove("FERRY_TEST_ABORT_AFTER_WRITES")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed ({:?})\nstdout:\n{}\nstderr:\n{stderr}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
    // The commands ran against the binary under test, and the tour ended with a copy of the tree.
    assert!(tmp
        .path()
        .join("acme-config/tenants/acme-dev/agents/support-bot.yaml")
        .is_file());
    assert!(
        !stderr.contains("error:"),
        "an error in the tour:\n{stderr}"
    );
}

#[test]
fn the_tour_extraction_reads_sh_blocks_only() {
    let text = "intro\n## A five-minute tour\n```sh\na\n```\n```yaml\nb\n```\n### sub\n```sh\nc\n```\n## Next\n```sh\nd\n```\n";
    assert_eq!(
        shell_blocks(text, "## A five-minute tour"),
        vec!["a\n", "c\n"]
    );
}
