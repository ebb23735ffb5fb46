//! Tenant housekeeping at the edge: the warning when the store file could be
//! committed to git, and `ferry tenant delete` with its guards.

use anyhow::{bail, Result};

use super::output::Output;
use super::repo::Repo;
use super::{Global, EXIT_OK};
use crate::backend::store::{Store, TenantAdmin};

/// The store's tenant housekeeping, or a clear error when this store has none.
pub(crate) fn admin_mut(store: &mut dyn Store) -> Result<&mut dyn TenantAdmin> {
    store
        .tenant_admin_mut()
        .ok_or_else(|| anyhow::anyhow!("this store cannot keep tenant variables or delete tenants"))
}

/// The `.gitignore` line that keeps the store file at `rel` (relative to the work tree) out of git.
fn ignore_line(rel: &str) -> String {
    match rel.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/"),
        None => format!("{rel}*"),
    }
}

/// Warn on stderr when the store file of `store_url` lies inside a git work
/// tree and git does not ignore it (the store holds the tenants' private keys).
pub(crate) fn warn_if_store_committable(out: &Output, repo: &Repo, store_url: &str) {
    let Some(path) = store_url.strip_prefix("sqlite:") else {
        return;
    };
    let p = std::path::Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo.root.join(p)
    };
    if let Some((root, rel)) = crate::backend::vcs::unignored_in_worktree(&full) {
        out.warn(&format!(
            "the store {rel} lies in the git work tree {} and is not ignored: it holds the tenants' private keys",
            root.display()
        ));
        out.hint(&format!(
            "add this line to {}: {}",
            root.join(".gitignore").display(),
            ignore_line(&rel)
        ));
    }
}

/// The resources of other tenants whose `syncedFrom` names `tenant`: (tenant, kind, name).
fn dependants(store: &dyn Store, tenant: &str) -> Result<Vec<(String, String, String)>> {
    let mut found = Vec::new();
    for t in store.tenants()? {
        if t.name == tenant {
            continue;
        }
        for r in store.all_drafts(&t.name)? {
            if r.metadata
                .synced_from
                .as_ref()
                .is_some_and(|s| s.tenant == tenant)
            {
                found.push((t.name.clone(), r.kind().to_string(), r.name().to_string()));
            }
        }
    }
    Ok(found)
}

/// `ferry tenant delete T --yes [--force]`.
pub(crate) fn tenant_delete(
    g: &Global,
    out: &Output,
    tenant: &str,
    yes: bool,
    force: bool,
) -> Result<i32> {
    let (repo, mut store) = super::commands::open(g)?;
    let record = store.tenant(tenant)?;
    let users = dependants(store.as_ref(), tenant)?;
    if !users.is_empty() && !force {
        let mut lines = vec![format!(
            "tenant `{tenant}` is the origin (syncedFrom) of {} resource(s) in other tenants:",
            users.len()
        )];
        lines.extend(
            users
                .iter()
                .take(10)
                .map(|(t, k, n)| format!("  {t}: {k} {n}")),
        );
        if users.len() > 10 {
            lines.push(format!("  and {} more", users.len() - 10));
        }
        lines.push("hint: pass --force to delete it anyway; their lineage then names a tenant that is gone".into());
        bail!("{}", lines.join("\n"));
    }
    if !yes {
        bail!(
            "deleting tenant `{tenant}` removes its {} resource(s), published versions and variables from the store\nhint: pass --yes to delete it",
            record.resources
        );
    }
    admin_mut(store.as_mut())?.delete_tenant(tenant)?;
    if out.json() {
        out.json_value(
            &serde_json::json!({"tenant": tenant, "deleted": true, "resources": record.resources}),
        );
    } else {
        out.data(&format!(
            "Deleted tenant {tenant} ({} resources) from the store",
            record.resources
        ));
        out.hint(&format!(
            "its folder {} in the repo is left as it is",
            repo.tenant_rel(tenant)
        ));
    }
    Ok(EXIT_OK)
}

/// Why `tenant create` refuses a folder whose tenant.toml names a public key
/// this store does not hold (another store's tenant, or a deleted one).
pub(crate) fn foreign_recipient(folder: &str, tenant: &str, recipient: &str) -> String {
    format!(
        "{folder}/tenant.toml already names a public key ({recipient}) that this store holds no private key for: \
         another store has tenant `{tenant}`, or had it. Creating it here would replace that key, and every \
         `ENC[age,…]` value in the folder would stop decrypting where it is applied now\n\
         hint: point --store (or FERRY_STORE) at the store that holds tenant `{tenant}`; or pass --force to give it a \
         new key here, then encrypt its secrets again with `ferry secret encrypt --tenant {tenant}`"
    )
}

#[cfg(test)]
mod tests {
    use super::ignore_line;

    #[test]
    fn the_ignore_line_names_the_store_folder() {
        assert_eq!(ignore_line(".ferry/store.db"), ".ferry/");
        assert_eq!(ignore_line("config/.ferry/store.db"), "config/.ferry/");
        assert_eq!(ignore_line("store.db"), "store.db*");
    }
}
