//! git's index file, patched in place after a commit that changed a few files.
//!
//! libgit2 keeps the index in step by reading every entry into memory, then
//! writing them all back, each way behind a collision-detecting SHA-1 of the
//! whole file: about 80 ms for a tenant of 100,000 files, however small the
//! change. This module owns the shortcut. It copies the index's bytes once,
//! rewriting only the entries of the changed paths (the new blob ID and the
//! file's stat data) and dropping removed ones, moves the cached tree IDs
//! (the `TREE` extension) of the folders above them to the trees just
//! committed, and writes the file back under git's `index.lock` protocol
//! with a fresh checksum. It takes only what it fully understands (index
//! versions 2 and 3, no extension but `TREE`, no conflict stages, no added
//! paths) and otherwise says so, and the caller lets libgit2 do the whole
//! job; it never names git2.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

/// A raw git object ID (SHA-1).
pub type RawId = [u8; 20];

/// The stat data git keeps per entry, so that `git status` sees a file
/// unchanged without reading it. Zeros where it could not be read, which git
/// then checks by content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    /// ctime seconds and nanoseconds.
    pub ctime: (u32, u32),
    /// mtime seconds and nanoseconds.
    pub mtime: (u32, u32),
    /// Device.
    pub dev: u32,
    /// Inode.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (truncated to 32 bits, as git does).
    pub size: u32,
}

impl FileStat {
    /// The stat data of the file at `path`, or zeros.
    pub fn of(path: Option<&Path>) -> FileStat {
        let Some(meta) = path.and_then(|p| std::fs::symlink_metadata(p).ok()) else {
            return FileStat::default();
        };
        #[allow(unused_mut)]
        let mut stat = FileStat {
            size: meta.len() as u32,
            ..FileStat::default()
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            stat.ctime = (meta.ctime() as u32, meta.ctime_nsec() as u32);
            stat.mtime = (meta.mtime() as u32, meta.mtime_nsec() as u32);
            stat.dev = meta.dev() as u32;
            stat.ino = meta.ino() as u32;
            stat.uid = meta.uid();
            stat.gid = meta.gid();
        }
        stat
    }
}

/// What a commit changed, in the index's terms: full paths from the top of
/// the working tree.
#[derive(Debug, Default)]
pub struct IndexChange {
    /// Changed files: their new blob, and the file on disk whose stat data
    /// the entry takes (read only for entries found). Each must be in the
    /// index already (a changed file, not a new one).
    pub changed: BTreeMap<String, (RawId, Option<PathBuf>)>,
    /// Removed files.
    pub removed: BTreeSet<String>,
    /// Each folder above a changed file (`""` for the top): its tree in the
    /// parent commit and in the new one.
    pub trees: BTreeMap<String, (RawId, RawId)>,
}

/// Patch the index of the repository whose git folder is `git_dir` with
/// `change`, under `index.lock`. `Ok(false)`, with nothing written, when
/// this module does not take the index (no index, a version or extension
/// it does not know, a conflict, an added path, the lock taken); the caller
/// then updates the index through libgit2, which also reports a broken one.
pub fn patch_file(git_dir: &Path, change: &IndexChange) -> std::io::Result<bool> {
    let index_path = git_dir.join("index");
    let lock_path = git_dir.join("index.lock");
    let mut lock = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock_path)
    {
        Ok(f) => f,
        Err(_) => return Ok(false),
    };
    let written = (|| -> std::io::Result<bool> {
        let Ok(bytes) = std::fs::read(&index_path) else {
            return Ok(false);
        };
        let Some(patched) = patch(&bytes, change) else {
            return Ok(false);
        };
        lock.write_all(&patched)?;
        lock.flush()?;
        std::fs::rename(&lock_path, &index_path)?;
        Ok(true)
    })();
    if !matches!(written, Ok(true)) {
        let _ = std::fs::remove_file(&lock_path);
    }
    written
}

const HEADER: usize = 12;
const TRAILER: usize = 20;
/// The fixed part of an entry: ten 32-bit stat fields, the ID, the flags.
const ENTRY_FIXED: usize = 62;
const FLAG_ASSUME_VALID: u16 = 0x8000;
const FLAG_EXTENDED: u16 = 0x4000;
const FLAG_STAGE: u16 = 0x3000;
const NAME_MASK: u16 = 0x0fff;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// The index `bytes` with `change` applied, or `None` when this module
/// does not take it.
pub fn patch(bytes: &[u8], change: &IndexChange) -> Option<Vec<u8>> {
    if bytes.len() < HEADER + TRAILER || bytes.get(..4)? != b"DIRC" {
        return None;
    }
    let version = u32_at(bytes, 4)?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let count = u32_at(bytes, 8)? as usize;
    let body = &bytes[..bytes.len() - TRAILER];
    let trailer = &bytes[bytes.len() - TRAILER..];
    let hashed = trailer.iter().any(|b| *b != 0);
    if hashed && Sha1::digest(body).as_slice() != trailer {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..HEADER]);
    let (end, kept, found) = copy_entries(body, version, count, change, &mut out)?;
    if found != change.changed.len() {
        return None;
    }
    out[8..12].copy_from_slice(&(kept as u32).to_be_bytes());
    copy_extensions(&body[end..], change, &mut out)?;
    if hashed {
        let sum = Sha1::digest(&out);
        out.extend_from_slice(sum.as_slice());
    } else {
        out.extend_from_slice(&[0; TRAILER]);
    }
    Some(out)
}

/// Copy the `count` entries after the header into `out`, patching changed
/// ones and dropping removed ones. Returns where the entries end, how many
/// were kept and how many changed paths were found.
fn copy_entries(
    body: &[u8],
    version: u32,
    count: usize,
    change: &IndexChange,
    out: &mut Vec<u8>,
) -> Option<(usize, usize, usize)> {
    let (mut at, mut kept, mut found) = (HEADER, 0, 0);
    let mut previous: &[u8] = &[];
    for _ in 0..count {
        let flags = u16_at(body, at + 60)?;
        let extra = if version >= 3 && flags & FLAG_EXTENDED != 0 {
            2
        } else {
            0
        };
        let name_at = at + ENTRY_FIXED + extra;
        let name_len = match flags & NAME_MASK {
            NAME_MASK => body.get(name_at..)?.iter().position(|b| *b == 0)?,
            n => n as usize,
        };
        let name = body.get(name_at..name_at + name_len)?;
        let len = (ENTRY_FIXED + extra + name_len + 8) / 8 * 8;
        let entry = body.get(at..at + len)?;
        let path = std::str::from_utf8(name).ok();
        let listed =
            path.is_some_and(|p| change.changed.contains_key(p) || change.removed.contains(p));
        if listed && (flags & FLAG_STAGE != 0 || extra != 0 || name == previous) {
            // A conflict, or flags (skip-worktree, intent-to-add) libgit2
            // would clear: leave it to libgit2.
            return None;
        }
        previous = name;
        at += len;
        if path.is_some_and(|p| change.removed.contains(p)) {
            continue;
        }
        kept += 1;
        let start = out.len();
        out.extend_from_slice(entry);
        if let Some((id, on_disk)) = path.and_then(|p| change.changed.get(p)) {
            found += 1;
            write_entry(&mut out[start..], id, &FileStat::of(on_disk.as_deref()));
        }
    }
    Some((at, kept, found))
}

/// Overwrite an entry's stat fields, mode and ID, and clear its
/// assume-valid flag (as libgit2's `add` does); its name stays.
fn write_entry(entry: &mut [u8], id: &RawId, stat: &FileStat) {
    let fields = [
        stat.ctime.0,
        stat.ctime.1,
        stat.mtime.0,
        stat.mtime.1,
        stat.dev,
        stat.ino,
        0o100644,
        stat.uid,
        stat.gid,
        stat.size,
    ];
    for (i, value) in fields.iter().enumerate() {
        entry[i * 4..i * 4 + 4].copy_from_slice(&value.to_be_bytes());
    }
    entry[40..60].copy_from_slice(id);
    let flags = u16::from_be_bytes([entry[60], entry[61]]) & !FLAG_ASSUME_VALID;
    entry[60..62].copy_from_slice(&flags.to_be_bytes());
}

/// Copy the extensions after the entries into `out`: `TREE` with the
/// folders above the change moved or invalidated, any other one refused.
fn copy_extensions(mut rest: &[u8], change: &IndexChange, out: &mut Vec<u8>) -> Option<()> {
    while !rest.is_empty() {
        let signature = rest.get(..4)?;
        let size = u32_at(rest, 4)? as usize;
        let data = rest.get(8..8 + size)?;
        if signature != b"TREE" {
            return None;
        }
        let tree = moved_tree_cache(data, change)?;
        out.extend_from_slice(b"TREE");
        out.extend_from_slice(&(tree.len() as u32).to_be_bytes());
        out.extend_from_slice(&tree);
        rest = &rest[8 + size..];
    }
    Some(())
}

/// One folder of the `TREE` extension, in its pre-order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTree {
    /// The folder's full path (`""` for the top).
    pub path: String,
    /// How many index entries it covers, or -1 when invalid.
    pub entries: i64,
    /// How many sub-folders follow it.
    pub subtrees: usize,
    /// Its tree ID, when valid.
    pub id: Option<RawId>,
}

/// Parse the `TREE` extension's data.
pub fn parse_tree_cache(mut data: &[u8]) -> Option<Vec<CachedTree>> {
    let mut nodes = Vec::new();
    // (path, sub-folders still to come) of each open folder.
    let mut open: Vec<(String, usize)> = Vec::new();
    while !data.is_empty() {
        let nul = data.iter().position(|b| *b == 0)?;
        let name = std::str::from_utf8(&data[..nul]).ok()?;
        data = &data[nul + 1..];
        let space = data.iter().position(|b| *b == b' ')?;
        let entries: i64 = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        data = &data[space + 1..];
        let newline = data.iter().position(|b| *b == b'\n')?;
        let subtrees: usize = std::str::from_utf8(&data[..newline]).ok()?.parse().ok()?;
        data = &data[newline + 1..];
        let id = if entries >= 0 {
            let id: RawId = data.get(..20)?.try_into().ok()?;
            data = &data[20..];
            Some(id)
        } else {
            None
        };
        while open.last().is_some_and(|(_, left)| *left == 0) {
            open.pop();
        }
        let path = match open.last_mut() {
            Some((parent, left)) => {
                *left -= 1;
                match parent.as_str() {
                    "" => name.to_string(),
                    p => format!("{p}/{name}"),
                }
            }
            None if nodes.is_empty() => name.to_string(),
            None => return None,
        };
        open.push((path.clone(), subtrees));
        nodes.push(CachedTree {
            path,
            entries,
            subtrees,
            id,
        });
    }
    Some(nodes)
}

/// The folders above `path` (full), top first, `""` included.
fn folders_above(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(path.match_indices('/').map(move |(i, _)| &path[..i]))
}

/// The `TREE` data with each valid folder above a changed file moved from
/// its parent-commit tree to the new one, and each folder above a removed
/// file invalidated (its entry count changed). `None` when a valid folder
/// held something other than the parent commit's tree.
fn moved_tree_cache(data: &[u8], change: &IndexChange) -> Option<Vec<u8>> {
    let invalid: BTreeSet<&str> = change
        .removed
        .iter()
        .flat_map(|p| folders_above(p))
        .collect();
    let moved: BTreeSet<&str> = change
        .changed
        .keys()
        .flat_map(|p| folders_above(p))
        .collect();
    let mut out = Vec::with_capacity(data.len());
    for mut node in parse_tree_cache(data)? {
        if invalid.contains(node.path.as_str()) {
            node.entries = -1;
            node.id = None;
        } else if let Some(id) = node.id {
            if moved.contains(node.path.as_str()) {
                match change.trees.get(&node.path) {
                    Some((old, new)) if id == *old => node.id = Some(*new),
                    _ => return None,
                }
            }
        }
        let name = node.path.rsplit('/').next().unwrap_or_default();
        let name = if node.path.is_empty() { "" } else { name };
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(format!("{} {}\n", node.entries, node.subtrees).as_bytes());
        if let Some(id) = node.id {
            out.extend_from_slice(&id);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_above_a_path_start_at_the_top() {
        let folders: Vec<&str> = folders_above("tenants/big/agents/a.yaml").collect();
        assert_eq!(
            folders,
            ["", "tenants", "tenants/big", "tenants/big/agents"]
        );
        assert_eq!(folders_above("a.yaml").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn a_tree_cache_parses_to_full_paths_and_serializes_back() {
        let mut data = Vec::new();
        data.extend_from_slice(b"\x003 2\n");
        data.extend_from_slice(&[1; 20]);
        data.extend_from_slice(b"a\x00-1 1\n");
        data.extend_from_slice(b"b\x001 0\n");
        data.extend_from_slice(&[2; 20]);
        data.extend_from_slice(b"c\x001 0\n");
        data.extend_from_slice(&[3; 20]);
        let nodes = parse_tree_cache(&data).expect("parses");
        let paths: Vec<&str> = nodes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["", "a", "a/b", "c"]);
        assert_eq!(nodes[1].id, None);
        assert_eq!(nodes[3].id, Some([3; 20]));
        let unchanged = moved_tree_cache(&data, &IndexChange::default()).expect("same");
        assert_eq!(unchanged, data);
    }

    #[test]
    fn a_broken_index_is_left_to_libgit2() {
        assert!(patch(b"not an index at all, not at all", &IndexChange::default()).is_none());
        let mut v4 = b"DIRC\x00\x00\x00\x04\x00\x00\x00\x00".to_vec();
        v4.extend_from_slice(&[0; 20]);
        assert!(patch(&v4, &IndexChange::default()).is_none());
        let mut empty = b"DIRC\x00\x00\x00\x02\x00\x00\x00\x00".to_vec();
        empty.extend_from_slice(&[7; 20]);
        assert!(
            patch(&empty, &IndexChange::default()).is_none(),
            "bad checksum"
        );
    }
}
