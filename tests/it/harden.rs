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

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, b| {
        table[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// One entry of a hand-made ZIP: name, method (0 stored, 8 deflate), the
/// bytes as stored, the uncompressed size and CRC.
struct RawEntry {
    name: String,
    method: u16,
    stored: Vec<u8>,
    size: u32,
    crc: u32,
}

/// Flags, method, time, CRC and sizes: the fields local and central headers share.
fn entry_fields(out: &mut Vec<u8>, e: &RawEntry) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&e.method.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&e.crc.to_le_bytes());
    out.extend_from_slice(&(e.stored.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.size.to_le_bytes());
}

/// A ZIP written byte by byte: `locals` become local headers with data;
/// `central` lists (name, index into locals) pairs, so several central
/// entries can point at one local header.
fn craft_zip(locals: &[RawEntry], central: &[(String, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in locals {
        offsets.push(out.len() as u32);
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        entry_fields(&mut out, e);
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&e.stored);
    }
    let cd_start = out.len() as u32;
    for (name, i) in central {
        let e = &locals[*i];
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        entry_fields(&mut out, e);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&offsets[*i].to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(central.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn import_refused(env: &TestEnv, file: &str) -> String {
    let r = env
        .ferry(&[
            "zip",
            "import",
            file,
            "--tenant",
            T,
            "--strategy",
            "create",
            "--yes",
        ])
        .expect(1);
    assert_eq!(resources_of(env, T), 0, "nothing imported");
    r.stderr
}

#[test]
fn zip_entries_sharing_one_local_header_are_refused_before_inflating() {
    let env = TestEnv::acme();
    let data = vec![b'a'; 1 << 20];
    let local = RawEntry {
        name: "documents/a.md".into(),
        method: 0,
        crc: crc32(&data),
        size: data.len() as u32,
        stored: data,
    };
    let central: Vec<(String, usize)> = (0..3900)
        .map(|i| (format!("documents/d{i:04}.md"), 0))
        .collect();
    std::fs::write(env.path("overlap.zip"), craft_zip(&[local], &central)).unwrap();
    let err = import_refused(&env, "overlap.zip");
    assert!(err.contains("local header"), "{err}");
    assert!(err.contains("ZIP bomb"), "{err}");
}

#[test]
fn zip_entries_with_overlapping_data_are_refused() {
    let env = TestEnv::acme();
    let data = vec![b'b'; 4096];
    let mk = |name: &str| RawEntry {
        name: name.into(),
        method: 0,
        crc: crc32(&data),
        size: data.len() as u32,
        stored: data.clone(),
    };
    let mut bytes = craft_zip(
        &[mk("documents/a.md"), mk("documents/b.md")],
        &[("documents/a.md".into(), 0), ("documents/b.md".into(), 1)],
    );
    // Make entry a's data claim to run into b's local header.
    let cd = bytes.len() - 22 - 2 * (46 + 14);
    let size_at = cd + 20;
    bytes[size_at..size_at + 4].copy_from_slice(&(8192u32).to_le_bytes());
    std::fs::write(env.path("overlap2.zip"), bytes).unwrap();
    let err = import_refused(&env, "overlap2.zip");
    assert!(err.contains("overlap"), "{err}");
}

#[test]
fn zip_whose_entries_declare_more_than_the_budget_is_refused_before_inflating() {
    // 30 entries of 10 MiB each at a modest ratio (under the per-entry
    // bomb check), all sharing one compressed stream written 30 times.
    let env = TestEnv::acme();
    let mut data = Vec::with_capacity(10 << 20);
    let mut x: u32 = 7;
    while data.len() < 10 << 20 {
        data.extend_from_slice(&[0u8; 48]);
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.push((x >> 24) as u8);
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "x",
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .unwrap();
    std::io::Write::write_all(&mut w, &data).unwrap();
    let one = w.finish().unwrap().into_inner();
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(one)).unwrap();
    let mut deflated = Vec::new();
    std::io::Read::read_to_end(&mut a.by_index_raw(0).unwrap(), &mut deflated).unwrap();
    let ratio = data.len() / deflated.len();
    assert!((10..200).contains(&ratio), "ratio {ratio}");
    let locals: Vec<RawEntry> = (0..30)
        .map(|i| RawEntry {
            name: format!("documents/big{i:02}.md"),
            method: 8,
            crc: crc32(&data),
            size: data.len() as u32,
            stored: deflated.clone(),
        })
        .collect();
    let central: Vec<(String, usize)> = locals
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.clone(), i))
        .collect();
    std::fs::write(env.path("wide.zip"), craft_zip(&locals, &central)).unwrap();
    let err = import_refused(&env, "wide.zip");
    assert!(err.contains("declare"), "{err}");
    assert!(err.contains("before inflating"), "{err}");
}

#[test]
fn values_that_only_look_encrypted_are_refused_naming_the_field() {
    for fake in ["ENC[age,sk-live-PLAINTEXT999]", "ENC[age,!!!garbage###]"] {
        let env = TestEnv::acme();
        let field = set_crm_key(&env, fake);
        let field = field.as_str();
        for args in [
            &["validate", "--tenant", T][..],
            &["apply", "--tenant", T, "--yes"][..],
        ] {
            let r = env.ferry(args).expect(1);
            assert!(r.stderr.contains("connections/crm.yaml"), "{}", r.stderr);
            assert!(r.stderr.contains(field), "{}", r.stderr);
            assert!(r.stderr.contains("age ciphertext"), "{}", r.stderr);
            assert!(!r.stderr.contains("PLAINTEXT999"), "{}", r.stderr);
            assert!(!r.stderr.contains("garbage"), "{}", r.stderr);
        }
        assert_eq!(resources_of(&env, T), 0);
    }
}

#[test]
fn control_characters_non_finite_numbers_and_ranges_are_refused() {
    const DESC: &str = "description: Front-line";
    let path = format!("{DEV}/agents/support-bot.yaml");
    let cases: [(&str, &str, &str); 7] = [
        (
            "temperature: 0.2",
            "temperature: .nan",
            "spec.model.temperature",
        ),
        (
            "temperature: 0.2",
            "temperature: .inf",
            "spec.model.temperature",
        ),
        (
            "temperature: 0.2",
            "temperature: 2.5",
            "spec.model.temperature",
        ),
        ("maxTokens: 1024", "maxTokens: 0", "spec.model.maxTokens"),
        (
            DESC,
            "description: \"a\\u001b[31mred\" #",
            "spec.description",
        ),
        (DESC, "description: \"a\\0b\" #", "spec.description"),
        (DESC, "description: \"abc\\u202Edef\" #", "spec.description"),
    ];
    for (from, to, field) in cases {
        let env = TestEnv::acme();
        let text = env.read(&path);
        assert!(text.contains(from));
        env.write(&path, &text.replacen(from, to, 1));
        let r = env.ferry(&["validate", "--tenant", T]).expect(1);
        assert!(
            r.stderr.contains("agents/support-bot.yaml"),
            "{to}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(field), "{to}: {}", r.stderr);
        assert!(
            !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{202e}'),
            "{to}"
        );
        env.ferry(&["apply", "--tenant", T, "--yes"]).expect(1);
    }
}

#[test]
fn the_schemas_carry_the_ranges() {
    let agent = ferry::domain::schema::generate()
        .into_iter()
        .find(|(n, _)| n.starts_with("agent"))
        .unwrap()
        .1;
    assert!(agent.contains("\"maximum\": 2.0"), "{agent}");
    assert!(agent.contains("\"minimum\": 1"), "{agent}");
}

#[test]
fn a_placeholder_applied_back_never_overwrites_the_stored_secret() {
    let env = TestEnv::acme();
    let enc = env
        .ferry_stdin(&["secret", "encrypt", "--tenant", T], "real-secret-1")
        .ok()
        .stdout
        .trim()
        .to_string();
    let path = format!("{DEV}/connections/crm.yaml");
    let text = env.read(&path);
    env.write(&path, &text.replace("${vars.CRM_API_KEY}", &enc));
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    // The tree comes back from a scrubbed export: the placeholder stands in.
    env.write(
        &path,
        &text.replace("${vars.CRM_API_KEY}", "${secret:scrubbed}"),
    );
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["export", "--tenant", T, "--out", "back"]).ok();
    let back = std::fs::read_to_string(env.path("back/connections/crm.yaml")).unwrap();
    assert!(back.contains(&enc), "the stored secret is kept:\n{back}");
    assert!(!back.contains("secret:scrubbed"), "{back}");
}

/// `ferry secret encrypt --tenant TENANT` of `plain`.
fn encrypt_to(env: &TestEnv, tenant: &str, plain: &str) -> String {
    env.ferry_stdin(&["secret", "encrypt", "--tenant", tenant], plain)
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// Put `value` as the CRM connection's API key of acme-dev; returns the key's field name.
fn set_crm_key(env: &TestEnv, value: &str) -> String {
    let path = format!("{DEV}/connections/crm.yaml");
    let text = env.read(&path);
    let line = text
        .lines()
        .find(|l| l.contains("apiKey:"))
        .unwrap()
        .to_string();
    let (key, _) = line.split_once(':').unwrap();
    env.write(&path, &text.replace(&line, &format!("{key}: {value}")));
    key.trim().to_string()
}

/// Issue 13.6: a second store must not silently give an existing
/// tenant.toml a new public key: refused (naming why, with a hint) unless `--force`.
#[test]
fn tenant_create_refuses_a_tenant_toml_that_names_another_stores_key() {
    let env = TestEnv::acme();
    let toml = format!("{DEV}/tenant.toml");
    let before = env.read(&toml);
    assert!(before.contains("recipient"), "{before}");
    let other = ["--store", "sqlite:other.db"];
    let r = env
        .ferry(&[&other[..], &["tenant", "create", T]].concat())
        .expect(1);
    assert!(
        r.stderr.contains("already names a public key"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(env.read(&toml), before, "tenant.toml untouched");
    let list = env
        .ferry(&[&other[..], &["tenant", "list", "--output", "json"]].concat())
        .ok()
        .stdout;
    assert!(!list.contains(T), "nothing created: {list}");
    env.ferry(&[&other[..], &["tenant", "create", T, "--force"]].concat())
        .ok();
    assert_ne!(
        env.read(&toml),
        before,
        "--force gives the folder the new key"
    );
    // The tenant the store holds already: its own error, as before.
    let r = env.ferry(&["tenant", "create", T]).expect(1);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
}

/// Issue 13.6: an `ENC[age,…]` value encrypted to another key fails every
/// command that has the store (validate, plan, apply, ZIP import), naming
/// the file and field and never the value; one encrypted to the tenant passes.
#[test]
pub fn values_encrypted_to_another_key_are_refused_where_the_store_is_at_hand() {
    let env = TestEnv::acme();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    let foreign = encrypt_to(&env, "acme-prod", "sk-live-FOREIGN777");
    set_crm_key(&env, &foreign);
    for args in [
        &["validate", "--tenant", T][..],
        &["plan", "--tenant", T][..],
        &["apply", "--tenant", T, "--yes"][..],
    ] {
        let r = env.ferry(args).expect(1);
        for want in [
            "connections/crm.yaml",
            "apiKey",
            "does not decrypt",
            "acme-dev",
        ] {
            assert!(r.stderr.contains(want), "{args:?} {want}: {}", r.stderr);
        }
        for out in [&r.stdout, &r.stderr] {
            assert!(!out.contains(&foreign) && !out.contains("FOREIGN777"));
        }
    }
    assert_eq!(resources_of(&env, T), 0);
    env.ferry(&["zip", "pack", DEV, "-o", "dev.zip"]).ok();
    let r = env
        .ferry(&[
            "zip",
            "import",
            "--yes",
            "dev.zip",
            "--tenant",
            T,
            "--strategy",
            "create",
        ])
        .expect(1);
    assert!(r.stderr.contains("apiKey"), "{}", r.stderr);
    assert!(r.stderr.contains("does not decrypt"), "{}", r.stderr);
    assert!(!r.stderr.contains(&foreign));
    assert_eq!(resources_of(&env, T), 0);

    set_crm_key(&env, &encrypt_to(&env, T, "sk-live-OWN555"));
    env.ferry(&["validate", "--tenant", T]).ok();
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
}

/// On a store with users, `ferry validate` checks encrypted values against
/// the tenant's key only for someone who may read the tenant (a viewer).
/// Anyone else is told, in the file holding the value, that it was not
/// checked and which grant would check it; the tree is still validated.
#[test]
fn validate_checks_encrypted_values_only_for_a_reader_of_the_tenant() {
    let env = TestEnv::acme();
    env.ferry(&["tenant", "create", "acme-prod"]).ok();
    env.ferry(&["--as", "root", "user", "add", "root"]).ok();
    env.user("vic", &[(T, "viewer")]);
    env.user("eve", &[("acme-prod", "owner")]);
    set_crm_key(&env, &encrypt_to(&env, "acme-prod", "sk-live-FOREIGN777"));
    let r = env.ferry(&["--as", "eve", "validate", "--tenant", T]).ok();
    for want in [
        "connections/crm.yaml",
        "encrypted values were not checked",
        "needs the viewer role on tenant `acme-dev`",
        "ferry grant 'eve' acme-dev viewer",
    ] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    assert!(!r.stderr.contains("does not decrypt"), "{}", r.stderr);
    let r = env
        .ferry(&["--as", "vic", "validate", "--tenant", T])
        .expect(1);
    assert!(r.stderr.contains("does not decrypt"), "{}", r.stderr);
    assert!(!r.stderr.contains("not checked"), "{}", r.stderr);
}

/// Issue 14.3 and 13.6 over HTTP: a staging edit holding a value that only
/// looks encrypted, or one encrypted to another tenant's key, answers 400
/// naming the field (never the value); the tenant's own ciphertext lands.
#[test]
fn staging_edits_refuse_fake_and_foreign_ciphertexts_naming_the_field() {
    use serde_json::json;
    let (env, token) = crate::serve::acme_server_env();
    let foreign = encrypt_to(&env, "acme-prod", "sk-live-FOREIGN777");
    let own = encrypt_to(&env, T, "sk-live-OWN555");
    let server = crate::common::Server::start(&env, &[]);
    let url = server.url("/api/v2/agents/support-bot/tools/crm-lookup/actions/list-orders");
    let t = Some(token.as_str());
    for (value, says) in [
        ("ENC[age,sk-live-PLAINTEXT999]", "age ciphertext"),
        ("ENC[age,!!!garbage###]", "age ciphertext"),
        (foreign.as_str(), "does not decrypt"),
    ] {
        let a = crate::common::http_json("PATCH", &url, t, &json!({"config": {"apiKey": value}}));
        let body = String::from_utf8_lossy(&a.body).into_owned();
        assert_eq!(a.status, 400, "{body}");
        assert!(body.contains("apiKey") && body.contains(says), "{body}");
        for leak in ["PLAINTEXT999", "garbage", "FOREIGN777", value] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
    crate::common::http_json("PATCH", &url, t, &json!({"config": {"apiKey": own}})).expect(200);
}

/// Issue 13.6: plans (text, Markdown, JSON) and revert previews show a
/// ciphertext as `ENC[age,…XXXX]`, its last four characters, never in full.
#[test]
fn plans_and_revert_previews_show_ciphertext_abbreviated() {
    let env = TestEnv::acme();
    let first = encrypt_to(&env, T, "first-secret");
    let second = encrypt_to(&env, T, "second-secret");
    let short = |enc: &str| format!("ENC[age,…{}]", &enc[enc.len() - 5..enc.len() - 1]);
    let whole = |out: &str, enc: &str| out.contains(&enc[8..40]);
    set_crm_key(&env, &first);
    let created = env.ferry(&["plan", "--tenant", T]).ok().stdout;
    assert!(!whole(&created, &first), "{created}");
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["publish", "--tenant", T, "-m", "one"]).ok();
    set_crm_key(&env, &second);
    for format in ["text", "markdown", "json"] {
        let out = env
            .ferry(&["plan", "--tenant", T, "--output", format])
            .ok()
            .stdout;
        assert!(out.contains(&short(&second)), "{format}: {out}");
        assert!(out.contains(&short(&first)), "{format}: {out}");
        assert!(
            !whole(&out, &first) && !whole(&out, &second),
            "{format}: {out}"
        );
    }
    env.ferry(&["apply", "--tenant", T, "--yes"]).ok();
    env.ferry(&["publish", "--tenant", T, "-m", "two"]).ok();
    for format in ["text", "json"] {
        let out = env
            .ferry(&[
                "revert",
                "--preview",
                "--tenant",
                T,
                "2",
                "--output",
                format,
            ])
            .ok()
            .stdout;
        assert!(out.contains(&short(&first)), "{format}: {out}");
        assert!(
            !whole(&out, &first) && !whole(&out, &second),
            "{format}: {out}"
        );
    }
}
