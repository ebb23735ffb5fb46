//! The only module that names git2: repositories, commits, tags and trees at revisions.
//!
//! ferry reads trees straight out of git objects (no checkout), records the
//! commit each apply came from, and tags publishes. Everything here takes
//! paths and revisions and gives back plain data.

use std::path::Path;

/// An error of a git operation.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// git2 failed.
    #[error("git: {message}")]
    Git {
        /// What git said.
        message: String,
    },
}

impl From<git2::Error> for VcsError {
    fn from(e: git2::Error) -> Self {
        VcsError::Git {
            message: e.message().to_string(),
        }
    }
}

/// Create a git repository at `dir` (nothing happens if one is there already).
pub fn init_repo(dir: &Path) -> Result<bool, VcsError> {
    if git2::Repository::open(dir).is_ok() {
        return Ok(false);
    }
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    git2::Repository::init_opts(dir, &opts)?;
    Ok(true)
}

/// The `user.name` git would commit as in `dir`, if configured.
pub fn user_name(dir: &Path) -> Option<String> {
    let cfg = match git2::Repository::discover(dir) {
        Ok(r) => r.config().ok()?,
        Err(_) => git2::Config::open_default().ok()?,
    };
    cfg.get_string("user.name").ok().filter(|s| !s.is_empty())
}
