//! The fuzz targets' entry points: one function per target, taking raw
//! bytes, calling the same library functions the front ends call, and
//! returning nothing. Every input, however broken, must come back as an
//! error value; a panic is a bug. `fuzz/` (cargo-fuzz, out of the
//! workspace) wraps each in a libFuzzer target, and `tests/it/fuzz_corpus.rs`
//! replays every committed corpus input through them on stable.
//!
//! The store-backed targets work on an in-memory SQLite store holding
//! `fixtures/acme`'s acme-dev (built once per thread) whose writes fail before
//! their first row ([`WriteFault::FailAfter`]), so every input runs as far as
//! the write and none changes what the next input sees. Nothing here has
//! rules of its own.

use std::cell::RefCell;

use crate::backend::archive::{self, Limits};
use crate::backend::store::sqlite::SqliteStore;
use crate::backend::store::{ResourceStore, WriteFault};
use crate::domain::model::Kind;
use crate::domain::plan::{read_saved, DiffOptions};
use crate::domain::tree::{self, folder::FolderSource};
use crate::domain::yaml;
use crate::server::{edit_of_body, EditBody};
use crate::service::access::Actor;
use crate::service::zip_import::{self, ImportOptions, Strategy};
use crate::service::{apply, pipeline, staging};

/// The tenant the store-backed targets work on.
pub const TENANT: &str = "acme-dev";

/// The agent the staging target edits and the upgrade strategy targets.
pub const AGENT: &str = "support-bot";

/// A store with `fixtures/acme`'s acme-dev applied, every write failing before its first row.
fn fixture_store() -> Option<SqliteStore> {
    let mut store = SqliteStore::in_memory().ok()?;
    store
        .create_tenant(TENANT, None, &crate::domain::secrets::generate_keypair())
        .ok()?;
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/acme/tenants/acme-dev"
    );
    let tp = pipeline::plan_tree(
        &store,
        TENANT,
        &FolderSource::new(root),
        DiffOptions::default(),
    )
    .ok()?;
    apply::apply(&mut store, &tp.plan?, Default::default()).ok()?;
    store.set_write_fault(Some(WriteFault::FailAfter(0)));
    Some(store)
}

thread_local! {
    static STORE: RefCell<Option<SqliteStore>> = RefCell::new(fixture_store());
}

/// Run `f` on this thread's fixture store (built on first use).
fn with_store(f: impl FnOnce(&mut SqliteStore)) {
    STORE.with(|s| {
        if let Some(store) = s.borrow_mut().as_mut() {
            f(store);
        }
    });
}

/// Whether the fixture store could be built (the replay test checks it, so
/// that a broken fixture does not turn the store-backed targets into no-ops).
pub fn fixture_ready() -> bool {
    STORE.with(|s| s.borrow().is_some())
}

/// YAML resource decoding: `bytes` as one resource file at the path its
/// kind and name call for, decoded as a tree reader decodes it; what decodes
/// cleanly must encode, and decode back equal.
pub fn yaml_resource(bytes: &[u8]) {
    let path = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| yaml::decode_resource(text).ok())
        .map(|doc| format!("{}/{}.yaml", doc.spec.kind().step(), doc.metadata.name))
        .unwrap_or_else(|| "agents/fuzz.yaml".to_string());
    let (resource, diags) = tree::decode_unit(&path, bytes);
    let Some(resource) = resource.filter(|r| diags.is_empty() && r.kind() != Kind::Document) else {
        return;
    };
    let Ok(files) = tree::encode_resource(&resource) else {
        return;
    };
    for (path, yaml) in files.iter().filter(|(p, _)| p.ends_with(".yaml")) {
        let (again, diags) = tree::decode_unit(path, yaml);
        assert!(
            diags.is_empty() && again.as_ref() == Some(&resource),
            "decode(encode(r)) != r: {diags:?}\n{}",
            String::from_utf8_lossy(yaml)
        );
    }
}

/// Tree reading from a ZIP: the archive checks, then decoding the tree as
/// an import does.
pub fn zip_tree(bytes: &[u8]) {
    if let Ok(read) = archive::read_zip(bytes, &Limits::default()) {
        let _ = zip_import::decode(read);
    }
}

/// ZIP import planning: `bytes` imported onto the fixture tenant with each
/// strategy (upgrade targets the fixture's agent), as far as the write.
pub fn zip_import_plan(bytes: &[u8]) {
    with_store(|store| {
        for (strategy, target) in [
            (Strategy::Create, None),
            (Strategy::Merge, None),
            (Strategy::Upgrade, Some(AGENT.to_string())),
        ] {
            let opts = ImportOptions {
                strategy,
                target_agent: target,
                selected: None,
                workflow_order: None,
            };
            let _ = zip_import::import_bytes(
                store,
                &Actor::named("fuzz"),
                TENANT,
                bytes,
                &opts,
                false,
                None,
            );
        }
    });
}

/// The routes a staging-edit input can address: its first byte picks one.
fn edit_route(selector: u8) -> EditBody {
    match selector % 12 {
        0 => EditBody::UpdateAgent,
        1 => EditBody::CreateInstructions,
        2 => EditBody::UpdateInstructions,
        3 => EditBody::ConnectCorpora,
        4 => EditBody::DisconnectCorpora,
        5 => EditBody::UpdateCorpus {
            corpus: "policies-kb".into(),
        },
        6 => EditBody::UpdateToolAction {
            tool: "create-ticket".into(),
            action: "open-ticket".into(),
        },
        7 => EditBody::Guardrails,
        8 => EditBody::Access,
        9 => EditBody::Tags,
        10 => EditBody::CreateFolder,
        _ => EditBody::UpdateFolder,
    }
}

/// The staging-edit JSON body: the first byte picks the route, the rest is
/// the body, read as the server reads it and applied to the fixture agent's
/// draft as far as the write.
pub fn staging_body(bytes: &[u8]) {
    let Some((selector, body)) = bytes.split_first() else {
        return;
    };
    let Ok(edit) = edit_of_body(&edit_route(*selector), body) else {
        return;
    };
    with_store(|store| {
        let _ = staging::edit_staging(store, &Actor::named("fuzz"), TENANT, AGENT, &edit);
    });
}

/// The plan-file reader: `bytes` as `ferry apply --plan FILE` reads them,
/// rendered as the CLI prints a plan, then applied to the fixture tenant at
/// its current revision as far as the write.
pub fn plan_file(bytes: &[u8]) {
    let Ok(mut plan) = read_saved(bytes) else {
        return;
    };
    let _ = crate::cli::plan_renderings(&plan);
    with_store(|store| {
        let Ok((revision, _)) = store.index(TENANT) else {
            return;
        };
        plan.tenant = TENANT.to_string();
        plan.base_revision = revision;
        let _ = apply::apply_as(
            store,
            &Actor::named("fuzz"),
            &plan,
            apply::ApplyOptions { force: true },
        );
    });
}
