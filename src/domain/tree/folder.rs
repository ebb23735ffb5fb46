//! Trees in a folder on disk: reading through [`TreeSource`], and writing in place.
//!
//! Writing compares before it writes: a file whose bytes are already right
//! is left alone, and only files in step folders that the new tree no longer
//! has are removed. This keeps exports idempotent (a second export touches
//! nothing) and fast on large tenants.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{MemoryTree, SourceError, TreeSource};
use crate::domain::model::Kind;

/// A tenant tree in a folder.
#[derive(Debug, Clone)]
pub struct FolderSource {
    root: PathBuf,
}

impl FolderSource {
    /// A source for the folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FolderSource { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl TreeSource for FolderSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Vec<String>, SourceError> {
        if !self.root.is_dir() {
            return Err(SourceError::Missing {
                path: self.root.display().to_string(),
            });
        }
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&self.root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| SourceError::Read {
                path: self.root.display().to_string(),
                reason: e.to_string(),
            })?;
            if entry.file_type().is_dir() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&self.root)
                .map_err(|e| SourceError::Read {
                    path: entry.path().display().to_string(),
                    reason: e.to_string(),
                })?;
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        std::fs::read(self.root.join(path)).map_err(|e| SourceError::Read {
            path: self.root.join(path).display().to_string(),
            reason: e.to_string(),
        })
    }
}

/// What writing a tree changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteReport {
    /// Files created or rewritten.
    pub written: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Files already right.
    pub unchanged: usize,
}

/// Write `tree` into `root`, in place: rewrite only what differs, and remove
/// files in step folders that `tree` does not have.
pub fn write_tree(root: &Path, tree: &MemoryTree) -> std::io::Result<WriteReport> {
    std::fs::create_dir_all(root)?;
    for kind in Kind::ALL {
        let has = tree
            .files
            .keys()
            .any(|p| p.starts_with(&format!("{}/", kind.step())));
        if has {
            std::fs::create_dir_all(root.join(kind.step()))?;
        }
    }
    let results: Vec<std::io::Result<Option<String>>> = tree
        .files
        .par_iter()
        .map(|(rel, bytes)| {
            let path = root.join(rel);
            match std::fs::read(&path) {
                Ok(existing) if existing == *bytes => return Ok(None),
                _ => {}
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)?;
            Ok(Some(rel.clone()))
        })
        .collect();
    let mut report = WriteReport::default();
    for r in results {
        match r? {
            Some(p) => report.written.push(p),
            None => report.unchanged += 1,
        }
    }
    let existing = FolderSource::new(root).list().unwrap_or_default();
    for rel in existing {
        let in_step = rel
            .split_once('/')
            .is_some_and(|(first, _)| Kind::from_step(first).is_some());
        if in_step && !tree.files.contains_key(&rel) && !rel.ends_with("/.gitkeep") {
            std::fs::remove_file(root.join(&rel))?;
            report.removed.push(rel);
        }
    }
    report.written.sort();
    Ok(report)
}
