//! `ferry store copy`: every row of one store written to another, then checked.
//!
//! The source is read as one image (tenants with their keys, drafts, every
//! version, the publish log, drift bookkeeping, sync records, tenant
//! variables, users, grants, token hashes), written to the target in one
//! transaction (refused when the target holds any of the tenants, unless
//! replacing), then read back from the target and compared table by table:
//! row counts and blake3 of the rows. A difference is an error naming the
//! table.

use serde::Serialize;

use crate::backend::store::image::{Cell, ImageStore, StoreImage, TableImage};
use crate::backend::store::StoreError;

/// One table of a copy: its rows and their hash, the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedTable {
    /// The table.
    pub table: &'static str,
    /// Rows copied.
    pub rows: usize,
    /// blake3 of the rows.
    pub blake3: String,
}

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The tenants copied.
    pub tenants: Vec<String>,
    /// Each table, checked.
    pub tables: Vec<CopiedTable>,
}

/// An error of a copy.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target does not read back what was written.
    #[error("the copy does not check out: table `{table}` has {source_rows} rows ({source_hash}) in the source but {target_rows} ({target_hash}) in the target")]
    Mismatch {
        /// The table.
        table: &'static str,
        /// Rows in the source.
        source_rows: usize,
        /// Their hash.
        source_hash: String,
        /// Rows read back from the target.
        target_rows: usize,
        /// Their hash.
        target_hash: String,
    },
}

/// The target's rows of a store-wide table that the source also has (by first column).
fn matching(source: &TableImage, target: &TableImage) -> TableImage {
    let keys: std::collections::BTreeSet<&Cell> =
        source.rows.iter().filter_map(|r| r.first()).collect();
    TableImage {
        name: target.name,
        rows: target
            .rows
            .iter()
            .filter(|r| r.first().is_some_and(|k| keys.contains(k)))
            .cloned()
            .collect(),
    }
}

/// Copy every tenant of `from` into `to`; `replace` lets it overwrite tenants `to` holds.
pub fn copy(
    from: &dyn ImageStore,
    to: &mut dyn ImageStore,
    replace: bool,
) -> Result<CopyReport, CopyError> {
    let image: StoreImage = from.dump(None)?;
    to.load(&image, replace)?;
    let back = to.dump(Some(&image.tenants))?;
    let mut tables = Vec::with_capacity(image.tables.len());
    for (src, dst) in image.tables.iter().zip(&back.tables) {
        let dst = matching(src, dst);
        if src.rows != dst.rows {
            return Err(CopyError::Mismatch {
                table: src.name,
                source_rows: src.rows.len(),
                source_hash: src.digest(),
                target_rows: dst.rows.len(),
                target_hash: dst.digest(),
            });
        }
        tables.push(CopiedTable {
            table: src.name,
            rows: src.rows.len(),
            blake3: src.digest(),
        });
    }
    Ok(CopyReport {
        tenants: image.tenants,
        tables,
    })
}
