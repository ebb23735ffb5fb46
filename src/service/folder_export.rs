//! A whole export of a tenant into its folder, a chunk at a time: the
//! drafts are encoded in chunks ([`pipeline::export_streamed`]), and each
//! chunk is written to the folder ([`TreeWriter`]) and, for
//! `export --commit`, fed to a [`vcs::StreamedCommit`] as it comes, so that
//! nothing holds the whole tree. The export of only what changed
//! ([`crate::service::changed_export`]) is tried before this one; a remote
//! store's export is collected instead ([`crate::service::remote_export`]).

use std::path::Path;

use crate::backend::store::Store;
use crate::backend::vcs::Identity;
use crate::domain::tree::folder::{TreeWriter, WriteReport};
use crate::service::access::Actor;
use crate::service::gitplan::{self, GitPlanError};
use crate::service::pipeline;

/// The commit an export makes of the folder it wrote.
#[derive(Debug, Clone, Copy)]
pub struct CommitAs<'a> {
    /// The repo's root (the folder must be the tenant's own in it).
    pub root: &'a Path,
    /// The commit message.
    pub message: &'a str,
    /// The author and committer, else git's configured identity.
    pub who: Option<&'a Identity>,
}

/// What a whole export wrote, and committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderExport {
    /// Files in the exported tree (`tenant.toml` included).
    pub files: usize,
    /// Plain-text credentials written as the placeholder.
    pub scrubbed: usize,
    /// What changed in the folder.
    pub report: WriteReport,
    /// The new commit, or `None` when none was asked for or HEAD held the tree already.
    pub commit: Option<String>,
}

/// Export every draft of `tenant` into `dir`, as `actor` (a viewer), and
/// commit the folder when `commit` says how (`actor` must then be an editor
/// of the tenant). The role is checked before anything is written. The
/// committed tree becomes the tenant's last applied commit
/// (`gitplan::finish_streamed_export`).
pub fn export_to_folder(
    store: &mut dyn Store,
    actor: &Actor,
    tenant: &str,
    dir: &Path,
    commit: Option<CommitAs<'_>>,
) -> Result<FolderExport, GitPlanError> {
    match commit {
        Some(_) => gitplan::authorize_commit(store, actor, tenant)?,
        None => crate::service::zip_export::authorize_export::<GitPlanError>(store, actor, tenant)?,
    }
    let drafts_at = store.tenant(tenant)?.revision;
    let mut streamed = match &commit {
        Some(c) => Some(gitplan::begin_streamed_export(c.root, tenant)?),
        None => None,
    };
    let cannot = |e: std::io::Error| GitPlanError::Write {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut writer = TreeWriter::new(dir).map_err(cannot)?;
    let (mut files, mut failed) = (0, None);
    let scrubbed = pipeline::export_streamed(&*store, tenant, &mut |chunk| {
        files += chunk.len();
        let chunk: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let done = writer.write(&chunk).map_err(cannot);
        let done = done.and_then(|()| match streamed.as_mut() {
            Some(c) => c.add(&chunk).map_err(GitPlanError::from),
            None => Ok(()),
        });
        let going = done.is_ok();
        failed = done.err();
        going
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let report = writer.finish().map_err(cannot)?;
    let commit = match (commit, streamed) {
        (Some(c), Some(s)) => {
            gitplan::finish_streamed_export(store, c.root, tenant, s, drafts_at, c.message, c.who)?
        }
        _ => None,
    };
    Ok(FolderExport {
        files,
        scrubbed,
        report,
        commit,
    })
}
