//! Publish tags: the port through which a publish marks the git commit that
//! holds what it published.
//!
//! [`PublishTagger`] is what the publish use case needs from version control,
//! and no more: which commit holds a tenant's tree, and an annotated tag on
//! it. `backend::vcs::GitTagger` implements it over git; the CLI passes one
//! when it runs in a config repo, and so does `ferry serve`, so a publish
//! over HTTP is tagged exactly as one from the command line. A publish is
//! recorded first and tagged after, so a tag exists only for a recorded
//! publish.

use std::collections::BTreeMap;

/// Whether a commit holds a folder: the commit, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// This commit holds exactly the files.
    Commit(String),
    /// No commit does; the reason, for people.
    NotHeld(String),
}

/// Why tagging failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TagError {
    /// What went wrong.
    pub message: String,
}

/// What a publish needs from version control.
pub trait PublishTagger {
    /// Which commit holds `folder` exactly as `files`: HEAD, else why not.
    fn holding(&self, folder: &str, files: &BTreeMap<String, Vec<u8>>)
        -> Result<Holding, TagError>;
    /// The file paths under `folder` at `commit`, or `None` when it cannot be read.
    fn paths_at(&self, folder: &str, commit: &str) -> Option<Vec<String>>;
    /// HEAD, when it holds `folder` exactly as `commit` does (the same
    /// tree): told by two tree IDs, without reading the files.
    fn head_with_folder_of(&self, folder: &str, commit: &str) -> Option<String>;
    /// Whether the tag `name` exists already.
    fn tag_exists(&self, name: &str) -> bool;
    /// Create the annotated tag `name` on `commit`, made by `publisher`.
    fn tag(&self, name: &str, commit: &str, message: &str, publisher: &str)
        -> Result<(), TagError>;
}
