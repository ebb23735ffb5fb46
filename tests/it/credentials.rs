//! Credential-shaped values in fields not named like credentials (issue 14,
//! item 4): refused in trees wherever they sit in a string, naming file,
//! line and field but never the value; scrubbed from ZIP, HTTP and git
//! exports, with the printed count matching what was scrubbed.

use crate::common::*;
use crate::serve::acme_server_env;

const CRM: &str = "tenants/acme-dev/connections/crm.yaml";

/// Values that must be refused, each with a recognisable part that must never be echoed.
const SHAPED: &[(&str, &str)] = &[
    ("Bearer sk-live-HDRSECRET456", "HDRSECRET456"),
    ("  ${sk-live-BRACED0000123}  ", "BRACED0000123"),
    ("debug with key=ghp_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c"),
    ("xoxb-123456789012-SLACKSECRETab", "SLACKSECRETab"),
    ("aws AKIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
    ),
    ("${vars.CRM_TOKEN} Zx9Qw7Er5Ty3Ui1Op0As8Df6Gh4Jk2LmN", "Zx9Qw7Er5Ty3Ui1Op0As8"),
];

#[test]
fn credential_shapes_in_any_field_are_refused_without_echoing_them() {
    let env = TestEnv::acme();
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let before = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .stdout;
    let original = env.read(CRM);
    for (value, mark) in SHAPED {
        let yaml_value = serde_json::to_string(value).unwrap();
        env.write(CRM, &original.replace("support-platform", &yaml_value));
        for args in [
            &["validate", "--tenant", "acme-dev"][..],
            &["plan", "--tenant", "acme-dev"],
            &["plan", "--tenant", "acme-dev", "--output", "json"],
            &["apply", "--tenant", "acme-dev", "--yes"],
        ] {
            let r = env.ferry(args).expect(1);
            let all = format!("{}{}", r.stdout, r.stderr);
            assert!(all.contains("connections/crm.yaml"), "{value}: {all}");
            assert!(
                all.contains("crm.yaml:18") || all.contains("\"line\": 18"),
                "{all}"
            );
            assert!(all.contains("spec.headers.X-Acme-Client"), "{all}");
            assert!(all.contains("plaintext-secret"), "{all}");
            assert!(
                all.contains("${vars.NAME}") && all.contains("ENC[age,"),
                "{all}"
            );
            assert!(!all.contains(mark), "{args:?} echoed the value: {all}");
        }
    }
    let after = env
        .ferry(&["tenant", "list", "--output", "json"])
        .ok()
        .stdout;
    assert_eq!(before, after, "a refused apply changed the store");
}

/// Put `value` into the stored drafts in place of `support-platform` (a store
/// written before the check, or by a back end that never ran it).
fn plant_in_store(env: &TestEnv, value: &str) {
    let db = env.repo.join(".ferry/store.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let n = conn
        .execute(
            "UPDATE resources SET document = replace(document, 'support-platform', ?1)",
            [value],
        )
        .unwrap();
    assert!(n > 0);
}

/// Every text in a ZIP, joined.
fn zip_text(bytes: &[u8]) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut all = String::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut f, &mut text);
        all.push_str(&text);
    }
    all
}

#[test]
fn credential_shapes_in_the_store_are_scrubbed_from_every_export_and_counted() {
    let (env, token) = acme_server_env();
    if env.store.is_some() {
        return; // the planted value goes into the SQLite file
    }
    env.git(&["init", "-q"]);
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "acme"]);
    plant_in_store(&env, "Bearer sk-live-HDRSECRET456");

    // ZIP export: the printed count is the number of placeholders written.
    let file = env.tmp.path().join("all.zip");
    let run = env
        .ferry(&[
            "--as",
            "root",
            "zip",
            "export",
            "--tenant",
            "acme-dev",
            "--all",
            "-o",
            file.to_str().unwrap(),
            "--output",
            "json",
        ])
        .ok();
    let bytes = std::fs::read(&file).unwrap();
    let text = zip_text(&bytes);
    assert!(!text.contains("HDRSECRET"), "the ZIP ships the credential");
    let placeholders = text.matches("${secret:scrubbed}").count();
    assert!(placeholders >= 2, "{placeholders}");
    assert_eq!(run.json()["scrubbed"], placeholders, "{}", run.stdout);

    // HTTP export of an agent.
    let server = Server::start(&env, &[]);
    let zip = http(
        "POST",
        &server.url("/backup/export/support-bot"),
        Some(&token),
        &[],
        None,
    );
    assert_eq!(zip.status, 200, "{}", String::from_utf8_lossy(&zip.body));
    assert!(!zip_text(&zip.body).contains("HDRSECRET"));
    assert!(!server.log().contains("HDRSECRET"));

    // Export to the folder and to git: scrubbed, counted, ENC values kept.
    let run = env
        .ferry(&[
            "--as", "root", "export", "--tenant", "acme-dev", "--commit", "-m", "export",
        ])
        .ok();
    assert!(
        run.stderr.contains("credential(s) scrubbed"),
        "{}",
        run.stderr
    );
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("HDRSECRET"));
    let crm = env.read(CRM);
    assert!(crm.contains("${secret:scrubbed}"), "{crm}");
    let history = env.git(&["log", "--all", "-p"]);
    assert!(
        !history.contains("HDRSECRET"),
        "git history holds the credential"
    );
    // The exported tree is valid: the placeholder is not a credential.
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
}
