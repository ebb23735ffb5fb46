//! Trees in a folder on disk: reading through [`TreeSource`], and writing in place.
//!
//! Writing compares before it writes: a file whose bytes are already right
//! is left alone, and only files in step folders that the new tree no longer
//! has are removed. This keeps exports idempotent (a second export touches
//! nothing) and fast on large tenants.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Irregular, Listing, MemoryTree, SourceError, TreeSource, MAX_FILE_BYTES};
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
        Ok(self.listing()?.into_paths())
    }

    fn listing(&self) -> Result<Listing, SourceError> {
        if !self.root.is_dir() {
            return Err(SourceError::Missing {
                path: self.root.display().to_string(),
            });
        }
        let mut out = Listing::default();
        // Walked in directory order; the lists are sorted once at the end.
        for entry in walkdir::WalkDir::new(&self.root).follow_links(false) {
            let entry = entry.map_err(|e| SourceError::Read {
                path: self.root.display().to_string(),
                reason: e.to_string(),
            })?;
            let file_type = entry.file_type();
            if file_type.is_dir() {
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
            let path = rel.join("/");
            match irregular_kind(file_type) {
                None => out.files.push(path),
                Some(what) => out.irregular.push(Irregular { path, what }),
            }
        }
        out.files.sort();
        out.irregular.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        read_regular(&self.root.join(path), MAX_FILE_BYTES)
    }
}

/// What a non-regular file type is, or `None` for a regular file.
fn irregular_kind(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        return None;
    }
    if t.is_symlink() {
        return Some("symbolic link");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("FIFO (named pipe)");
        }
        if t.is_char_device() {
            return Some("character device");
        }
        if t.is_block_device() {
            return Some("block device");
        }
        if t.is_socket() {
            return Some("socket");
        }
    }
    if t.is_dir() {
        return Some("directory");
    }
    Some("special file")
}

/// Open `path` if it is a regular file, with its metadata.
#[cfg(unix)]
fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), SourceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |what| SourceError::NotRegular {
        path: path.display().to_string(),
        what,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular("symbolic link"),
            Some(libc::ENXIO) => not_regular("socket"),
            _ => SourceError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            },
        })?;
    let opened = file.metadata().map_err(|e| SourceError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    match irregular_kind(opened.file_type()) {
        Some(what) => Err(not_regular(what)),
        None => Ok((file, opened)),
    }
}

/// Open `path` if it is a regular file, with its metadata.
#[cfg(not(unix))]
fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), SourceError> {
    let io = |e: std::io::Error| SourceError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let not_regular = |what| SourceError::NotRegular {
        path: path.display().to_string(),
        what,
    };
    let before = std::fs::symlink_metadata(path).map_err(io)?;
    if let Some(what) = irregular_kind(before.file_type()) {
        return Err(not_regular(what));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let opened = file.metadata().map_err(io)?;
    if !opened.is_file() {
        return Err(not_regular("file that changed while it was read"));
    }
    Ok((file, opened))
}

/// Read a regular file, never following a link and never blocking on
/// anything else (a FIFO would block, a device would not end). On Unix the
/// file is opened once without following a link and without blocking, and
/// the opened handle's type is checked; elsewhere the type is checked first,
/// then again on the opened handle. Its size must be within `limit`; at
/// most `limit + 1` bytes are read.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, SourceError> {
    let shown = || path.display().to_string();
    let io = |e: std::io::Error| SourceError::Read {
        path: shown(),
        reason: e.to_string(),
    };
    let (file, opened) = open_regular(path)?;
    let too_large = || SourceError::TooLarge {
        path: shown(),
        limit,
    };
    if opened.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + 1), &mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
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
    let mut writer = TreeWriter::new(root)?;
    let files: Vec<(&str, &[u8])> = tree
        .files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    writer.write(&files)?;
    writer.finish()
}

/// A tree written into a folder a part at a time ([`write_tree`] in one
/// go): [`TreeWriter::write`] writes each part's files that differ,
/// [`TreeWriter::finish`] removes the files in step folders that no part
/// had. An export streams its chunks through it and never holds the tree.
#[derive(Debug)]
pub struct TreeWriter {
    root: PathBuf,
    seen: std::collections::HashSet<String>,
    steps: Vec<Kind>,
    report: WriteReport,
}

impl TreeWriter {
    /// Start writing into `root` (made when missing).
    pub fn new(root: &Path) -> std::io::Result<TreeWriter> {
        std::fs::create_dir_all(root)?;
        Ok(TreeWriter {
            root: root.to_path_buf(),
            seen: std::collections::HashSet::new(),
            steps: Vec::new(),
            report: WriteReport::default(),
        })
    }

    /// Write the files of one part (paths unique across parts).
    pub fn write<B: AsRef<[u8]> + Sync>(&mut self, files: &[(&str, B)]) -> std::io::Result<()> {
        for kind in Kind::ALL {
            let prefix = format!("{}/", kind.step());
            if !self.steps.contains(&kind) && files.iter().any(|(p, _)| p.starts_with(&prefix)) {
                let dir = self.root.join(kind.step());
                if std::fs::symlink_metadata(&dir).is_ok_and(|m| !m.is_dir()) {
                    return Err(std::io::Error::other(format!(
                        "`{}` is not a folder (a link?); ferry never writes through links",
                        dir.display()
                    )));
                }
                std::fs::create_dir_all(dir)?;
                self.steps.push(kind);
            }
        }
        let root = &self.root;
        let results: Vec<std::io::Result<bool>> = files
            .par_iter()
            .map(|(rel, bytes)| {
                let (path, bytes) = (root.join(rel), bytes.as_ref());
                match read_regular(&path, bytes.len() as u64) {
                    Ok(existing) if existing == bytes => return Ok(false),
                    // Never write through a link: replace it with the file.
                    Err(SourceError::NotRegular { .. }) => std::fs::remove_file(&path)?,
                    _ => {}
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, bytes)?;
                Ok(true)
            })
            .collect();
        for ((rel, _), written) in files.iter().zip(results) {
            match written? {
                true => self.report.written.push(rel.to_string()),
                false => self.report.unchanged += 1,
            }
            self.seen.insert(rel.to_string());
        }
        Ok(())
    }

    /// Remove the files in step folders that no part had; what was done.
    pub fn finish(mut self) -> std::io::Result<WriteReport> {
        let existing = FolderSource::new(&self.root).list().unwrap_or_default();
        for rel in existing {
            let in_step = rel
                .split_once('/')
                .is_some_and(|(first, _)| Kind::from_step(first).is_some());
            if in_step && !self.seen.contains(&rel) && !rel.ends_with("/.gitkeep") {
                std::fs::remove_file(self.root.join(&rel))?;
                self.report.removed.push(rel);
            }
        }
        self.report.written.sort();
        Ok(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_written_in_parts_is_the_tree_written_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("agents")).unwrap();
        std::fs::write(root.join("agents/gone.yaml"), "old").unwrap();
        std::fs::write(root.join("agents/same.yaml"), "same").unwrap();
        std::fs::write(root.join("notes.md"), "kept: not in a step folder").unwrap();
        let mut writer = TreeWriter::new(root).unwrap();
        writer
            .write(&[("agents/same.yaml", b"same".as_slice())])
            .unwrap();
        writer
            .write(&[("tools/new.yaml", b"new".as_slice())])
            .unwrap();
        let report = writer.finish().unwrap();
        assert_eq!(report.written, vec!["tools/new.yaml"]);
        assert_eq!(report.removed, vec!["agents/gone.yaml"]);
        assert_eq!(report.unchanged, 1);
        assert!(root.join("notes.md").exists());
        assert_eq!(std::fs::read(root.join("tools/new.yaml")).unwrap(), b"new");
    }

    #[test]
    fn reads_are_bounded_by_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.md");
        std::fs::write(&p, vec![b'x'; 1000]).unwrap();
        assert_eq!(read_regular(&p, 1000).unwrap().len(), 1000);
        assert!(matches!(
            read_regular(&p, 999),
            Err(SourceError::TooLarge { limit: 999, .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn devices_links_and_fifos_are_refused_without_blocking() {
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10),
            Err(SourceError::NotRegular {
                what: "character device",
                ..
            })
        ));
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_regular(&link, 10),
            Err(SourceError::NotRegular {
                what: "symbolic link",
                ..
            })
        ));
        let fifo = dir.path().join("fifo.yaml");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        assert!(matches!(
            read_regular(&fifo, 10),
            Err(SourceError::NotRegular {
                what: "FIFO (named pipe)",
                ..
            })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn export_never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "keep me").unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("agents")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("agents/a.yaml")).unwrap();
        let mut tree = MemoryTree::default();
        tree.files.insert("agents/a.yaml".into(), b"new".to_vec());
        write_tree(&root, &tree).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
        assert_eq!(std::fs::read(root.join("agents/a.yaml")).unwrap(), b"new");
    }
}
