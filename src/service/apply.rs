//! Apply: a plan on a store, in one transaction.
//!
//! The plan's payloads become one [`WriteBatch`]: upserts in the plan's
//! (top-down) order, then deletes (bottom-up). The store refuses the batch
//! when the tenant moved past the plan's `base_revision`, so a saved plan
//! can never overwrite changes it did not see. A prune that would delete
//! more than half of a tenant is refused unless forced.

use serde::Serialize;

use crate::backend::store::{Store, StoreError, VersionRecord, WriteBatch};
use crate::domain::plan::{ActionKind, PayloadError, Plan, Summary};

/// Options of an apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Allow a prune that deletes more than half of the tenant.
    pub force: bool,
}

/// Why an apply was refused or failed. The store is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The prune would delete most of the tenant.
    #[error(
        "refusing to delete {deletes} of {total} resources of tenant `{tenant}` without --force"
    )]
    MassDelete {
        /// The tenant.
        tenant: String,
        /// How many would be deleted.
        deletes: usize,
        /// How many the tenant has.
        total: usize,
    },
    /// A payload of the plan is broken (a hand-edited plan file).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// The tenant.
    pub tenant: String,
    /// The tenant revision after the apply.
    pub revision: u64,
    /// Counts of what was done.
    pub summary: Summary,
}

/// Whether a prune of `deletes` out of `total` needs `--force`.
pub fn is_mass_delete(deletes: usize, total: usize) -> bool {
    deletes > 0 && deletes * 2 > total
}

/// Apply `plan` to `store` in one transaction.
pub fn apply(
    store: &mut dyn Store,
    plan: &Plan,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    apply_with_versions(store, plan, Vec::new(), options)
}

/// Apply `plan` and record published `versions` as they are, in one
/// transaction (promotion carries a resource's history with its drafts).
pub fn apply_with_versions(
    store: &mut dyn Store,
    plan: &Plan,
    versions: Vec<VersionRecord>,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let total =
        plan.summary.skip + plan.summary.update + plan.summary.delete + plan.summary.conflict;
    if !options.force && is_mass_delete(plan.summary.delete, total) {
        return Err(ApplyError::MassDelete {
            tenant: plan.tenant.clone(),
            deletes: plan.summary.delete,
            total,
        });
    }
    let mut batch = WriteBatch {
        base_revision: plan.base_revision,
        commit: plan.source_commit.clone(),
        refresh: plan.refresh.clone(),
        versions,
        ..WriteBatch::default()
    };
    for a in &plan.actions {
        match a.action {
            ActionKind::Create | ActionKind::Update => {
                if let Some(w) = a.written()? {
                    batch.upserts.push(w);
                }
            }
            ActionKind::Delete => batch.deletes.push(a.id.clone()),
            ActionKind::Skip | ActionKind::Conflict => {}
        }
    }
    let revision = store.write(&plan.tenant, &batch)?;
    Ok(ApplyReport {
        tenant: plan.tenant.clone(),
        revision,
        summary: plan.summary,
    })
}
