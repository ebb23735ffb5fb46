//! Apply: a plan on a store, in one transaction.
//!
//! The plan's payloads become one [`WriteBatch`]: upserts in the plan's
//! (top-down) order, then deletes (bottom-up). The store refuses the batch
//! when the tenant moved past the plan's `base_revision`, so a saved plan
//! can never overwrite changes it did not see. A prune that would delete
//! more than half of a tenant is refused unless forced.

use serde::Serialize;

use crate::backend::store::{Store, StoreError, VersionRecord, WriteBatch};
use crate::domain::access::{AccessError, Role};
use crate::domain::plan::{ActionKind, PayloadError, Plan, Summary};
use crate::service::access::{authorize, Actor};

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
    /// The actor may not write the tenant's drafts.
    #[error(transparent)]
    Access(#[from] AccessError),
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

/// The one [`WriteBatch`] a plan writes: its upserts in plan order, its
/// deletes, hash refreshes and source commit, and `versions` as they are.
pub fn batch_of(plan: &Plan, versions: Vec<VersionRecord>) -> Result<WriteBatch<'_>, ApplyError> {
    let mut batch = WriteBatch {
        base_revision: plan.base_revision,
        commit: plan.source_commit.clone(),
        refresh: plan.refresh.clone(),
        versions,
        ..WriteBatch::default()
    };
    batch.upserts.reserve_exact(
        plan.actions
            .iter()
            .filter(|a| matches!(a.action, ActionKind::Create | ActionKind::Update))
            .count(),
    );
    for a in &plan.actions {
        match a.action {
            ActionKind::Create | ActionKind::Update => {
                if let Some(w) = a.written()? {
                    batch.upserts.push((w.0.into(), w.1));
                }
            }
            ActionKind::Delete => batch.deletes.push(a.id.clone()),
            ActionKind::Skip | ActionKind::Conflict => {}
        }
    }
    Ok(batch)
}

/// Apply a tree's `plan` as `actor`, an editor of the tenant (`ferry apply`).
pub fn apply_as(
    store: &mut dyn Store,
    actor: &Actor,
    plan: &Plan,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    authorize_apply(&*store, actor, &plan.tenant)?;
    write_plan(store, plan, Vec::new(), options, actor.name())
}

/// The role check of [`apply_as`] alone (editor), for a front end that
/// plans and asks before it applies, and should refuse before either.
pub fn authorize_apply(store: &dyn Store, actor: &Actor, tenant: &str) -> Result<(), ApplyError> {
    authorize::<ApplyError>(store, actor, tenant, Role::Editor, "applying")
}

/// Apply `plan` to `store` in one transaction (the step every use case that
/// writes drafts ends in, after its own role check).
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
    write_plan(store, plan, versions, options, None)
}

/// [`apply_with_versions`], recording `by` as the creator or last editor of
/// the drafts it writes.
pub fn write_plan(
    store: &mut dyn Store,
    plan: &Plan,
    versions: Vec<VersionRecord>,
    options: ApplyOptions,
    by: Option<&str>,
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
    let mut batch = batch_of(plan, versions)?;
    batch.actor = by.map(str::to_string);
    let revision = store.write(&plan.tenant, &batch)?;
    Ok(ApplyReport {
        tenant: plan.tenant.clone(),
        revision,
        summary: plan.summary,
    })
}
