//! Exports from a remote store that move only what changed.
//!
//! A client exporting into a folder ([`export_tree`]) sends the blake3 of
//! every file the folder holds; the server ([`answer`]) renders the
//! tenant's tree with the same `pipeline::export_tree_scrubbed` as a local
//! export and returns every path, with the bodies of only the files whose
//! bytes differ. The client builds the whole tree from those and its own
//! files, so the folder is written exactly as a local export writes it,
//! and a second export after a one-file change moves one file. (A
//! resource's revision counts its own changes, not the tenant's, so the
//! server cannot list what changed since a tenant revision; the hashes say
//! it instead, and the full path list says what was deleted.)

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;

use crate::backend::store::remote::wire;
use crate::backend::store::{Store, StoreError};
use crate::domain::tree::{folder::FolderSource, MemoryTree, TreeSource};
use crate::service::pipeline::{self, PipelineError};

/// A tenant's exported tree (plain-text credentials scrubbed) and how many
/// were scrubbed, to be written into `dir`; with a remote store, also how
/// many files came over the wire (the rest were in `dir` already).
pub fn export_tree(
    store: &dyn Store,
    tenant: &str,
    dir: &Path,
) -> Result<(MemoryTree, usize, Option<usize>), PipelineError> {
    let Some(remote) = store.remote() else {
        let (tree, scrubbed) = pipeline::export_tree_scrubbed(store, tenant)?;
        return Ok((tree, scrubbed, None));
    };
    let held = held_files(dir);
    let request = wire::ExportRequest {
        have: held
            .iter()
            .map(|(p, b)| (p.clone(), blake3::hash(b).to_hex().to_string()))
            .collect(),
    };
    let answer = remote.export_tree(tenant, &request)?;
    let received = answer.files.len();
    let mut tree = MemoryTree::default();
    for path in answer.paths {
        let bytes = match answer.files.get(&path) {
            Some(body) => base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| garbled(&path, e))?,
            None => held
                .get(&path)
                .cloned()
                .ok_or_else(|| garbled(&path, "neither sent nor held"))?,
        };
        tree.files.insert(path, bytes);
    }
    Ok((tree, answer.scrubbed, Some(received)))
}

/// The regular files of `dir` (none when it is not there); a file that
/// cannot be read is left out, so the server sends it.
fn held_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let source = FolderSource::new(dir);
    let Ok(listing) = source.listing() else {
        return BTreeMap::new();
    };
    listing
        .files
        .into_iter()
        .filter_map(|p| source.read(&p).ok().map(|b| (p, b)))
        .collect()
}

fn garbled(path: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Store(StoreError::Remote {
        status: 0,
        code: "bad_answer".into(),
        message: format!("the ferry server's export of `{path}` does not decode: {reason}"),
        hint: Some("compare `ferry --version` on both sides".into()),
    })
}

/// The server's half: the tenant's exported tree without the files the
/// client holds as they are. The caller admitted a viewer of the tenant.
pub fn answer(
    store: &dyn Store,
    tenant: &str,
    request: &wire::ExportRequest,
) -> Result<wire::ExportAnswer, PipelineError> {
    let revision = store.tenant(tenant)?.revision;
    let (tree, scrubbed) = pipeline::export_tree_scrubbed(store, tenant)?;
    let have: BTreeMap<&str, &str> = request
        .have
        .iter()
        .map(|(p, h)| (p.as_str(), h.as_str()))
        .collect();
    let files = tree
        .files
        .iter()
        .filter(|(p, b)| have.get(p.as_str()) != Some(&blake3::hash(b).to_hex().as_str()))
        .map(|(p, b)| {
            let body = base64::engine::general_purpose::STANDARD.encode(b);
            (p.clone(), body)
        })
        .collect();
    Ok(wire::ExportAnswer {
        revision,
        paths: tree.files.keys().cloned().collect(),
        files,
        scrubbed,
    })
}
