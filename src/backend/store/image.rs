//! The rows of a store as data: what `ferry store copy` moves between back ends.
//!
//! Both back ends keep the same tables with the same columns ([`TABLES`]),
//! so a copy is those rows read from one store and written, as they are, to
//! the other in one transaction: tenants with their keys, drafts with their
//! revisions, every version, the publish log, git bookkeeping (drift), sync
//! records, tenant variables (as their ciphertext), users, grants and token
//! hashes (with their IDs, expiry, last use and revocation). [`TableImage::digest`] hashes a
//! table's rows in a fixed order, so a copy can be checked end to end.

use serde::Serialize;

use super::StoreError;

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// An integer (booleans are 0 and 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// A table the copy moves: its name, columns, and the column naming the tenant (`None`: store-wide).
pub struct TableSpec {
    /// The table.
    pub name: &'static str,
    /// Its columns, in order.
    pub columns: &'static [&'static str],
    /// The column holding the tenant name, if the rows belong to a tenant.
    pub tenant_column: Option<&'static str>,
}

/// The tables of a store, parents before children.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "users",
        columns: &["name", "owner", "created_at"],
        tenant_column: None,
    },
    TableSpec {
        name: "tenants",
        columns: &[
            "name",
            "environment",
            "recipient",
            "identity",
            "revision",
            "last_commit",
            "created_at",
        ],
        tenant_column: Some("name"),
    },
    TableSpec {
        name: "resources",
        columns: &[
            "tenant",
            "id",
            "kind",
            "name",
            "document",
            "content",
            "content_hash",
            "file_hash",
            "refs",
            "revision",
            "updated_at",
            "created_by",
            "updated_by",
        ],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "versions",
        columns: &[
            "tenant",
            "id",
            "version",
            "document",
            "content",
            "content_hash",
            "change_id",
            "published_at",
        ],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "publishes",
        columns: &[
            "tenant",
            "number",
            "change_track_id",
            "agent",
            "published_by",
            "published_at",
            "summary",
            "message",
            "tag",
            "commit_id",
        ],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "git_applied",
        columns: &["tenant", "revision"],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "applied_resources",
        columns: &["tenant", "id", "kind", "name", "revision"],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "sync_records",
        columns: &[
            "tenant",
            "local_id",
            "source_key",
            "origin_id",
            "revision",
            "content_hash",
        ],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "tenant_variables",
        columns: &["tenant", "name", "value", "updated_at"],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "grants",
        columns: &["user", "tenant", "role"],
        tenant_column: Some("tenant"),
    },
    TableSpec {
        name: "tokens",
        columns: &[
            "hash",
            "id",
            "user",
            "tenant",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ],
        tenant_column: None,
    },
];

/// The rows of one table, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableImage {
    /// The table.
    pub name: &'static str,
    /// Its rows, in the order of [`TableSpec::columns`], sorted.
    pub rows: Vec<Vec<Cell>>,
}

impl TableImage {
    /// blake3 of the rows, in their sorted order (hex).
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.rows).unwrap_or_default();
        blake3::hash(&bytes).to_hex().to_string()
    }
}

/// The rows of a store (or of some of its tenants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreImage {
    /// The store revision.
    pub revision: u64,
    /// The tenants it holds, by name.
    pub tenants: Vec<String>,
    /// One entry per table of [`TABLES`], in that order.
    pub tables: Vec<TableImage>,
}

/// A back end that can be read and written as rows.
pub trait ImageStore {
    /// The rows of the given tenants (all when `None`) and every store-wide row.
    fn dump(&self, tenants: Option<&[String]>) -> Result<StoreImage, StoreError>;
    /// Write an image in one transaction. Refused when the store holds any of
    /// its tenants, unless `replace`: then their rows are replaced.
    fn load(&mut self, image: &StoreImage, replace: bool) -> Result<(), StoreError>;
}

/// Keep the rows that belong to `tenants` (all when `None`), sorted; the tenant names found.
pub fn select(
    spec: &TableSpec,
    mut rows: Vec<Vec<Cell>>,
    tenants: Option<&[String]>,
) -> Vec<Vec<Cell>> {
    if let (Some(col), Some(wanted)) = (spec.tenant_column, tenants) {
        let i = spec.columns.iter().position(|c| *c == col).unwrap_or(0);
        rows.retain(|r| matches!(&r[i], Cell::Text(t) if wanted.contains(t)));
    }
    rows.sort();
    rows
}

/// The tenant names of an image's `tenants` table.
pub fn tenant_names(tables: &[TableImage]) -> Vec<String> {
    tables
        .iter()
        .find(|t| t.name == "tenants")
        .map(|t| {
            t.rows
                .iter()
                .filter_map(|r| match r.first() {
                    Some(Cell::Text(n)) => Some(n.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The refusal of a copy onto tenants the target holds.
pub fn refuse_existing(existing: &[String]) -> StoreError {
    StoreError::Refused {
        message: format!(
            "the target store already holds tenant(s) {}; nothing was copied\nhint: pass --force to replace them",
            existing
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
