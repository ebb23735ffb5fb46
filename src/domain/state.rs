//! What the core knows of a tenant's current state: the index of its resources.
//!
//! An [`IndexEntry`] is the small, always-loaded summary of one stored
//! resource: identity, path, hashes and outgoing references (as IDs). Plans
//! are computed against the index, and only the resources a plan updates are
//! fetched in full. This is what lets a plan with one change do work in
//! proportion to the change rather than to the tenant.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::model::{Kind, Resource};

/// The summary of one stored resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The resource ID.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// blake3 of its canonical stored form (ID references) and content.
    pub content_hash: String,
    /// Unit hash of the files it was last applied from.
    pub file_hash: String,
    /// IDs it references (built-ins excluded).
    pub refs: Vec<String>,
    /// Revision of its draft: bumped by every change.
    pub revision: u64,
}

impl IndexEntry {
    /// Path of its YAML file in a tree.
    pub fn path(&self) -> String {
        crate::domain::model::resource_path(self.kind, &self.name)
    }
}

/// The index of one tenant, with lookups by ID, by kind and name, and by path.
#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Vec<IndexEntry>,
    by_id: HashMap<String, usize>,
    by_name: HashMap<(Kind, String), usize>,
    by_path: HashMap<String, usize>,
}

impl Index {
    /// Build an index from entries.
    pub fn new(entries: Vec<IndexEntry>) -> Self {
        // Sized once: growing three maps of 100,000 keys step by step
        // rehashes every key several times over.
        let n = entries.len();
        let mut idx = Index {
            entries: Vec::with_capacity(n),
            by_id: HashMap::with_capacity(n),
            by_name: HashMap::with_capacity(n),
            by_path: HashMap::with_capacity(n),
        };
        for e in entries {
            let i = idx.entries.len();
            idx.by_id.insert(e.id.clone(), i);
            idx.by_name.insert((e.kind, e.name.clone()), i);
            idx.by_path.insert(e.path(), i);
            idx.entries.push(e);
        }
        idx
    }

    /// All entries, taking the index apart.
    pub fn into_entries(self) -> Vec<IndexEntry> {
        self.entries
    }

    /// All entries.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The entry with this ID.
    pub fn get(&self, id: &str) -> Option<&IndexEntry> {
        self.by_id.get(id).map(|i| &self.entries[*i])
    }

    /// The entry of this kind and name.
    pub fn by_name(&self, kind: Kind, name: &str) -> Option<&IndexEntry> {
        self.by_name
            .get(&(kind, name.to_string()))
            .map(|i| &self.entries[*i])
    }

    /// The entry whose YAML file is at `path`.
    pub fn by_path(&self, path: &str) -> Option<&IndexEntry> {
        self.by_path.get(path).map(|i| &self.entries[*i])
    }

    /// Whether the unit at `path` with unit hash `hash` is exactly what the store holds.
    pub fn is_unchanged(&self, path: &str, hash: &str) -> bool {
        self.by_path(path).is_some_and(|e| e.file_hash == hash)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Canonical bytes of a resource in stored form: the JSON of its envelope.
pub fn canonical_json(resource: &Resource) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Env<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: &'a crate::domain::model::Metadata,
        spec: &'a crate::domain::model::Spec,
    }
    serde_json::to_vec(&Env {
        api_version: crate::domain::model::API_VERSION,
        kind: resource.kind().name(),
        metadata: &resource.metadata,
        spec: &resource.spec,
    })
    .unwrap_or_default()
}

/// The content hash of a resource in stored form: canonical JSON plus content bytes.
pub fn content_hash(resource: &Resource) -> String {
    canonical(resource).1
}

/// The canonical JSON of a resource and its content hash, in one pass.
pub fn canonical(resource: &Resource) -> (Vec<u8>, String) {
    let json = canonical_json(resource);
    let mut h = blake3::Hasher::new();
    h.update(&json);
    if let Some(c) = &resource.content {
        h.update(b"\0ferry-content\0");
        h.update(c);
    }
    (json, h.finalize().to_hex().to_string())
}
