//! What `ferry revert` checks before it writes: which publish is meant (by
//! number, tag or change ID), the guard against emptying a tenant, and the
//! confirmation.

use anyhow::{bail, Result};

use super::git::RevertFlags;
use super::output::Output;
use crate::backend::store::{Store, TenantRecord};
use crate::service::apply::is_mass_delete;
use crate::service::publishing::RollbackPlan;

/// The change ID of the publish `publish` names: a number (`3`), a tag
/// (`acme-dev/publish/3`) or a change ID (returned as it is).
pub(crate) fn change_id_of(store: &dyn Store, tenant: &str, publish: &str) -> Result<String> {
    let number = publish.parse::<u64>().ok().or_else(|| {
        publish
            .strip_prefix(&format!("{tenant}/publish/"))
            .and_then(|n| n.parse::<u64>().ok())
    });
    let Some(number) = number else {
        if let Some((other, _)) = publish.split_once("/publish/") {
            bail!("`{publish}` is a publish of tenant `{other}`, not `{tenant}`\nhint: `ferry revert --tenant {other} {publish}`");
        }
        return Ok(publish.to_string());
    };
    let log = store.publishes(tenant)?;
    match log.iter().find(|p| p.number == number) {
        Some(p) => Ok(p.change_track_id.clone()),
        None => bail!(
            "tenant `{tenant}` has no publish #{number} (it has {} publish(es))\nhint: `ferry publishes --tenant {tenant}` lists them",
            log.len()
        ),
    }
}

/// How many drafts the revert deletes, and whether that is more than half of the tenant.
fn deletes(record: &TenantRecord, plan: &RollbackPlan) -> (usize, bool) {
    let n = plan.outcome.deletes.len();
    (n, is_mass_delete(n, record.resources as usize))
}

/// Say how many drafts the revert deletes; refuse a mass delete without
/// `--force`; ask before writing to the store unless `--yes`.
pub(crate) fn check(
    out: &Output,
    record: &TenantRecord,
    plan: &RollbackPlan,
    flags: RevertFlags,
) -> Result<()> {
    let tenant = &record.name;
    let (n, mass) = deletes(record, plan);
    if n > 0 {
        let verb = if flags.preview {
            "would delete"
        } else {
            "deletes"
        };
        out.status(&format!(
            "this revert {verb} {n} of the {} drafts of {tenant}",
            record.resources
        ));
    }
    if flags.preview || !plan.has_writes() {
        if mass && !flags.write_tree {
            out.warn("that is more than half of the tenant; the revert will need --force");
        }
        return Ok(());
    }
    if mass && !flags.force {
        bail!(
            "the revert would delete {n} of the {} drafts of {tenant}, more than half of the tenant; nothing was changed\nhint: pass --force if that is meant; `--preview` shows what it would do",
            record.resources
        );
    }
    if flags.write_tree || flags.yes {
        return Ok(());
    }
    if !super::commands::confirm_write(
        out,
        "revert",
        &format!("Revert these changes in the drafts of {tenant}?"),
    )? {
        bail!("nothing reverted");
    }
    Ok(())
}
