//! ZIP artifacts: a tenant tree (or one agent's part of it) plus `manifest.json`.
//!
//! This module owns the archive format and is the only one that names the
//! `zip` crate. Writing is deterministic: entries sorted by path, a fixed
//! timestamp (1980-01-01), fixed permissions (0644), deflate; entries are
//! compressed in parallel and appended in order, so packing the same tree
//! twice gives identical bytes. Compressed parts may wait in a temporary
//! file ([`SpilledParts`]) and be joined straight into the output file.
//! Reading checks the whole archive before the caller can write anything:
//! entry names (absolute paths, `..`, links,
//! duplicates), entry count, the layout the central directory declares
//! (entries that share a local header or overlap are refused, and the
//! declared sizes must fit the total budget, before anything is inflated),
//! per-entry and total sizes measured while decompressing (an entry may not
//! exceed its declared size), expansion ratio, and the manifest's blake3
//! hash of every entry.
//!
//! The import and export use cases live in [`crate::service::zip_export`]
//! and [`crate::service::zip_import`], and structural matching in
//! [`crate::domain::matching`]; they take and give trees in memory, so live
//! sync over HTTP reuses them with another transport.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek, Write};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::model::Kind;
use crate::domain::tree::MemoryTree;

/// The name of the manifest entry at the root of every ferry ZIP.
pub const MANIFEST: &str = "manifest.json";

/// The manifest format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The resource type of a kind as previews name it: `agent`, `workflow`, `knowledgeBase`, …
pub fn resource_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Document => "document",
        Kind::Connection => "connection",
        Kind::KnowledgeBase => "knowledgeBase",
        Kind::Tool => "tool",
        Kind::Workflow => "workflow",
        Kind::Agent => "agent",
        Kind::Evaluation => "evaluation",
    }
}

/// Where an archive came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManifestSource {
    /// The instance (installation) that exported it.
    pub instance: String,
    /// The tenant it was exported from.
    pub tenant: String,
    /// The git commit that holds exactly what the archive holds: the commit
    /// the tenant was last applied from, when nothing changed since; else `null`.
    #[serde(default)]
    pub commit: Option<String>,
    /// The content is in no commit ferry knows (the store changed since its
    /// last apply from git, or was never applied from git).
    #[serde(default, skip_serializing_if = "is_false")]
    pub dirty: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `manifest.json`: what an archive holds and the hash of every entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// Format version, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Where the archive came from.
    pub source: ManifestSource,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// The ID of the agent an agent export was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Number of resources per step (`agents`, `tools`, …).
    pub counts: BTreeMap<String, usize>,
    /// blake3 (hex) of every other entry, by path.
    pub entries: BTreeMap<String, String>,
}

impl Manifest {
    /// A manifest for `tree` (its `manifest.json`, if any, left out).
    pub fn for_tree(
        tree: &MemoryTree,
        source: ManifestSource,
        created_at: &str,
        agent: Option<String>,
    ) -> Manifest {
        Manifest::for_entries(entry_hashes(tree), source, created_at, agent)
    }

    /// A manifest for the entries whose blake3 (hex) `entries` holds by
    /// path ([`entry_hash`]).
    pub fn for_entries(
        entries: BTreeMap<String, String>,
        source: ManifestSource,
        created_at: &str,
        agent: Option<String>,
    ) -> Manifest {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for p in entries.keys() {
            if let Some((step, file)) = p.split_once('/') {
                if Kind::from_step(step).is_some() && file.ends_with(".yaml") && !file.contains('/')
                {
                    *counts.entry(step.to_string()).or_default() += 1;
                }
            }
        }
        Manifest {
            format_version: FORMAT_VERSION,
            source,
            created_at: created_at.to_string(),
            agent,
            counts,
            entries,
        }
    }

    /// The manifest as canonical bytes (pretty JSON, LF, final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }

    /// Parse manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ArchiveError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ArchiveError::BadManifest {
            reason: e.to_string(),
        })?;
        if m.format_version != FORMAT_VERSION {
            return Err(ArchiveError::BadManifest {
                reason: format!(
                    "formatVersion {} is not supported; this build reads version {FORMAT_VERSION}",
                    m.format_version
                ),
            });
        }
        Ok(m)
    }

    /// The first difference between the manifest and the entries of `tree`, if any.
    pub fn verify(&self, tree: &MemoryTree) -> Result<(), ArchiveError> {
        let actual = entry_hashes(tree);
        for (path, hash) in &actual {
            match self.entries.get(path) {
                None => {
                    return Err(ArchiveError::ManifestMismatch {
                        entry: path.clone(),
                        reason: "the entry is not listed in manifest.json".into(),
                    })
                }
                Some(h) if h != hash => {
                    return Err(ArchiveError::ManifestMismatch {
                        entry: path.clone(),
                        reason: "its blake3 hash differs from the one in manifest.json".into(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(path) = self.entries.keys().find(|p| !actual.contains_key(*p)) {
            return Err(ArchiveError::ManifestMismatch {
                entry: path.clone(),
                reason: "manifest.json lists it, but the archive does not hold it".into(),
            });
        }
        Ok(())
    }
}

/// blake3 (hex) of every entry of a tree except the manifest.
pub fn entry_hashes(tree: &MemoryTree) -> BTreeMap<String, String> {
    tree.files
        .par_iter()
        .filter(|(p, _)| p.as_str() != MANIFEST)
        .map(|(p, b)| (p.clone(), entry_hash(b)))
        .collect()
}

/// The manifest's hash of an entry's bytes: blake3, hex.
pub fn entry_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The manifest as an entry of its archive, compressed on its own to be
/// joined with the other parts ([`join_parts`]).
pub fn pack_manifest(manifest: &Manifest) -> Result<PackedPart, ArchiveError> {
    pack_entries(vec![(MANIFEST.to_string(), manifest.to_bytes())])
}

/// Limits on what reading an archive accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries.
    pub max_entries: usize,
    /// Largest entry, decompressed, in bytes.
    pub max_entry_bytes: u64,
    /// Largest total, decompressed, in bytes.
    pub max_total_bytes: u64,
    /// Largest expansion ratio of an entry that decompresses to more than 1 MiB.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_entry_bytes: 128 << 20,
            max_total_bytes: 192 << 20,
            max_ratio: 200,
        }
    }
}

/// Why an archive was refused or could not be made. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bytes are not a ZIP archive.
    #[error("not a readable ZIP archive: {reason}")]
    NotZip {
        /// What the reader said.
        reason: String,
    },
    /// An entry's name is unsafe or unusable.
    #[error("archive entry `{entry}` refused: {reason}")]
    BadEntry {
        /// The entry's name (lossy UTF-8).
        entry: String,
        /// Why.
        reason: String,
    },
    /// Two entries share a name.
    #[error(
        "archive entry `{entry}` appears more than once; refusing an archive with duplicate names"
    )]
    Duplicate {
        /// The name.
        entry: String,
    },
    /// A limit was exceeded.
    #[error("archive refused: {what} (limit {limit}){}", entry.as_ref().map(|e| format!(" at entry `{e}`")).unwrap_or_default())]
    TooLarge {
        /// What exceeded its limit.
        what: String,
        /// The limit.
        limit: u64,
        /// The entry, if one.
        entry: Option<String>,
    },
    /// manifest.json does not parse.
    #[error("manifest.json is not valid: {reason}")]
    BadManifest {
        /// Why.
        reason: String,
    },
    /// An entry does not match the manifest.
    #[error("archive entry `{entry}` does not match manifest.json: {reason}")]
    ManifestMismatch {
        /// The entry.
        entry: String,
        /// How.
        reason: String,
    },
    /// Writing the ZIP failed.
    #[error("cannot write the ZIP archive: {reason}")]
    Write {
        /// Why.
        reason: String,
    },
}

/// The IDs of a comma-separated list (`selectedResources`, `--selected`), blanks dropped.
pub fn split_ids(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// How many entries one compressing worker packs into its part of the archive.
const ZIP_PART_ENTRIES: usize = 2048;

/// Write a tree as ZIP bytes, deterministically, compressing on every core.
///
/// The sorted entries are cut into parts of [`ZIP_PART_ENTRIES`]. Each part
/// is packed by its own writer, which keeps one deflate state for all its
/// entries (a fresh state per entry costs more than compressing a small
/// file). The parts are then copied, compressed as they are, into one
/// archive in order. Each entry's bytes depend only on its name and data, so
/// the archive is the same however the parts are cut.
pub fn write_zip(tree: MemoryTree) -> Result<Vec<u8>, ArchiveError> {
    write_zip_in_parts(tree, ZIP_PART_ENTRIES)
}

/// [`write_zip`] with parts of `part_entries` entries each.
fn write_zip_in_parts(tree: MemoryTree, part_entries: usize) -> Result<Vec<u8>, ArchiveError> {
    let werr = |e: zip::result::ZipError| ArchiveError::Write {
        reason: e.to_string(),
    };
    let files: Vec<(String, Vec<u8>)> = tree.files.into_iter().collect();
    let mut parts: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    let mut rest = files.into_iter().peekable();
    while rest.peek().is_some() {
        parts.push(rest.by_ref().take(part_entries.max(1)).collect());
    }
    let packed: Vec<PackedPart> = parts
        .into_par_iter()
        .map(|files| pack_part(files).map(PackedPart))
        .collect::<Result<_, _>>()
        .map_err(werr)?;
    join_parts(packed)
}

/// Entries compressed on their own, ready to be joined into an archive by
/// [`join_parts`] with other parts, in any order of parts.
#[derive(Debug)]
pub struct PackedPart(Vec<u8>);

/// Compress `files` (names unique across the parts to be joined) into a
/// part, the same way [`write_zip`] compresses each entry.
pub fn pack_entries(mut files: Vec<(String, Vec<u8>)>) -> Result<PackedPart, ArchiveError> {
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pack_part(files)
        .map(PackedPart)
        .map_err(|e| ArchiveError::Write {
            reason: e.to_string(),
        })
}

/// One archive of every entry of `parts`, in name order: byte for byte what
/// [`write_zip`] makes of the same files. The compressed entries are copied
/// as they are, never compressed again.
pub fn join_parts(parts: Vec<PackedPart>) -> Result<Vec<u8>, ArchiveError> {
    let size: usize = parts.iter().map(|p| p.0.len()).sum();
    let out = Cursor::new(Vec::with_capacity(size + 1024));
    let parts = parts.into_iter().map(|p| Cursor::new(p.0)).collect();
    Ok(join_archives(parts, out)?.into_inner())
}

/// Compressed parts kept in an unnamed temporary file until they are
/// joined ([`SpilledParts::join_into`]), so that an archive of any size
/// holds only its directory in memory. The parts may come in any order.
#[derive(Debug)]
pub struct SpilledParts {
    file: std::fs::File,
    /// The folder the file is in (unnamed, it has no path of its own).
    dir: std::path::PathBuf,
    /// Each part's offset and length in the file.
    parts: Vec<(u64, u64)>,
}

impl SpilledParts {
    /// An empty spill, in the system's temporary folder.
    pub fn new() -> Result<SpilledParts, ArchiveError> {
        let dir = std::env::temp_dir();
        let file = tempfile::tempfile_in(&dir).map_err(|e| ArchiveError::Write {
            reason: format!("cannot make a temporary file in {}: {e}", dir.display()),
        })?;
        Ok(SpilledParts {
            file,
            dir,
            parts: Vec::new(),
        })
    }

    /// Append a part.
    pub fn add(&mut self, part: PackedPart) -> Result<(), ArchiveError> {
        (&self.file)
            .write_all(&part.0)
            .map_err(|e| ArchiveError::Write {
                reason: format!(
                    "cannot write a temporary file in {}: {e}",
                    self.dir.display()
                ),
            })?;
        let end = self.parts.last().map_or(0, |&(start, len)| start + len);
        self.parts.push((end, part.0.len() as u64));
        Ok(())
    }

    /// [`join_parts`] of the parts spilled so far, written into `out` (a
    /// file, say) from its start; each part is read back front to back as
    /// the join reaches its entries.
    pub fn join_into<W: Write + Seek>(self, out: W) -> Result<W, ArchiveError> {
        let windows = self
            .parts
            .iter()
            .map(|&(start, len)| SpillWindow {
                file: &self.file,
                start,
                len,
                pos: 0,
                buf: Vec::new(),
                buf_at: 0,
            })
            .collect();
        join_archives(windows, out)
    }
}

/// One spilled part read back: a window on the spill file, buffered so
/// that the entries of a part, read in order, cost one read per 64 KB.
struct SpillWindow<'a> {
    file: &'a std::fs::File,
    start: u64,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
}

impl Read for SpillWindow<'_> {
    fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || into.is_empty() {
            return Ok(0);
        }
        let buffered = self.buf_at..self.buf_at + self.buf.len() as u64;
        if !buffered.contains(&self.pos) {
            let want = (self.len - self.pos).min(64 * 1024);
            self.buf
                .resize(usize::try_from(want).unwrap_or(64 * 1024), 0);
            let mut file = self.file;
            file.seek(std::io::SeekFrom::Start(self.start + self.pos))?;
            file.read_exact(&mut self.buf)?;
            self.buf_at = self.pos;
        }
        let from = usize::try_from(self.pos - self.buf_at).unwrap_or(0);
        let n = into.len().min(self.buf.len() - from);
        into[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SpillWindow<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let (base, offset) = match to {
            std::io::SeekFrom::Start(at) => (at, 0),
            std::io::SeekFrom::End(back) => (self.len, back),
            std::io::SeekFrom::Current(by) => (self.pos, by),
        };
        self.pos = base.checked_add_signed(offset).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of a spilled part",
            )
        })?;
        Ok(self.pos)
    }
}

/// Copy every entry of `parts` (each an archive of entries sorted by
/// name) into one archive in `out`, in name order; each part is dropped
/// once its last entry is copied.
fn join_archives<R: Read + Seek, W: Write + Seek>(
    parts: Vec<R>,
    mut out: W,
) -> Result<W, ArchiveError> {
    let werr = |e: zip::result::ZipError| ArchiveError::Write {
        reason: e.to_string(),
    };
    let archives = parts
        .into_iter()
        .map(zip::ZipArchive::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(werr)?;
    // Every entry as (name, part, index in its part), sorted by name. The
    // names are copied once: reading them from the parts' directories at
    // each comparison checks their UTF-8 every time.
    let mut order: Vec<(Box<str>, usize, usize)> = Vec::new();
    let mut left: Vec<usize> = Vec::with_capacity(archives.len());
    for (part, archive) in archives.iter().enumerate() {
        left.push(archive.len());
        for index in 0..archive.len() {
            let name = archive
                .name_for_index(index)
                .and_then(|name| name.ok())
                .ok_or_else(|| ArchiveError::Write {
                    reason: format!("entry {index} of part {part} has no name"),
                })?;
            order.push((name.into(), part, index));
        }
    }
    order.sort_unstable();
    let mut archives: Vec<_> = archives.into_iter().map(Some).collect();
    let at = out.stream_position().map_err(|e| ArchiveError::Write {
        reason: e.to_string(),
    })?;
    let mut w = zip::ZipWriter::new(Positioned { inner: out, at });
    for (_, part, index) in order {
        let archive = archives[part].as_mut().ok_or_else(|| ArchiveError::Write {
            reason: format!("entry {index} of part {part} came after its part was done"),
        })?;
        w.raw_copy_file(archive.by_index_raw(index).map_err(werr)?)
            .map_err(werr)?;
        left[part] -= 1;
        if left[part] == 0 {
            archives[part] = None;
        }
    }
    Ok(w.finish().map_err(werr)?.inner)
}

/// A writer that keeps count of its own position, so that asking where it
/// is (as the ZIP writer does before and after every entry) costs neither a
/// flush of a buffered file nor a system call.
struct Positioned<W> {
    inner: W,
    at: u64,
}

impl<W: Write> Write for Positioned<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Seek> Seek for Positioned<W> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        if to != std::io::SeekFrom::Current(0) {
            self.at = self.inner.seek(to)?;
        }
        Ok(self.at)
    }
}

/// Pack one part of the entries into an archive of its own, dropping each
/// file's bytes once compressed.
fn pack_part(files: Vec<(String, Vec<u8>)>) -> zip::result::ZipResult<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        .system(zip::System::Unix);
    let raw: usize = files
        .iter()
        .map(|(n, d)| n.len() * 2 + d.len() / 2 + 128)
        .sum();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(raw)));
    for (name, data) in files {
        w.start_file(name, options)?;
        w.write_all(&data)?;
    }
    // The capacity was a guess: a part is kept until the join, so it
    // keeps only what it holds.
    let mut packed = w.finish()?.into_inner();
    packed.shrink_to_fit();
    Ok(packed)
}

/// Check an entry name: relative, `/`-separated, no `..`, `.` or empty parts, no NUL or backslash.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("absolute path".into());
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return Err("absolute path (drive letter)".into());
    }
    if name.contains('\\') {
        return Err("backslash in path".into());
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return Err("control character in path".into());
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for part in trimmed.split('/') {
        match part {
            ".." => return Err("path climbs out of the archive (`..`)".into()),
            "." | "" => return Err("path has an empty or `.` component".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Names of the central directory, read from the raw bytes (to name duplicates).
fn raw_central_names(bytes: &[u8]) -> Vec<Vec<u8>> {
    raw_central_names_in(bytes, 0)
}

/// [`raw_central_names`] of the part of an archive that starts at offset
/// `base` of the file and runs to its end (the central directory and the
/// end record, when `base` is at or before the directory).
fn raw_central_names_in(bytes: &[u8], base: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(eocd) = end_record(bytes) else {
        return out;
    };
    let get = |at: usize, n: usize| -> Option<u64> {
        let s = bytes.get(at..at + n)?;
        Some(s.iter().rev().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    };
    let (Some(count), Some(offset)) = (get(eocd + 10, 2), get(eocd + 16, 4)) else {
        return out;
    };
    let Some(mut at) = offset
        .checked_sub(base)
        .and_then(|at| usize::try_from(at).ok())
    else {
        return out;
    };
    for _ in 0..count {
        if bytes.get(at..at + 4) != Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
            break;
        }
        let (Some(n), Some(m), Some(k)) = (get(at + 28, 2), get(at + 30, 2), get(at + 32, 2))
        else {
            break;
        };
        let start = at + 46;
        if let Some(name) = bytes.get(start..start + n as usize) {
            out.push(name.to_vec());
        }
        at = start + (n + m + k) as usize;
    }
    out
}

/// Where the last end-of-central-directory record of `bytes` starts.
fn end_record(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
}

/// The longest end of an archive that can hold its end record: the record
/// (22 bytes) and a comment of up to 65,535 bytes.
const END_RECORD_REACH: u64 = 22 + 65_535;

/// [`raw_central_names`] of an archive file, reading only its end: the end
/// record, then the central directory it points to.
fn raw_central_names_of(file: &ArchiveFile) -> std::io::Result<Vec<Vec<u8>>> {
    let tail_start = file.len.saturating_sub(END_RECORD_REACH);
    let tail = file.read_range(tail_start, file.len)?;
    let Some(eocd) = end_record(&tail) else {
        return Ok(Vec::new());
    };
    let offset = tail
        .get(eocd + 16..eocd + 20)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let start = u64::from(offset);
    if start >= tail_start || start >= file.len {
        return Ok(raw_central_names_in(&tail, tail_start));
    }
    Ok(raw_central_names_in(
        &file.read_range(start, file.len)?,
        start,
    ))
}

/// An archive file read in place, by position: every reader made from it
/// (one per decompressing thread) shares the open file and keeps its own
/// position, so the archive is never held in memory whole.
#[derive(Debug, Clone)]
struct ArchiveFile {
    file: std::sync::Arc<std::fs::File>,
    len: u64,
    at: u64,
}

impl ArchiveFile {
    fn new(file: &std::fs::File) -> std::io::Result<ArchiveFile> {
        Ok(ArchiveFile {
            len: file.metadata()?.len(),
            file: std::sync::Arc::new(file.try_clone()?),
            at: 0,
        })
    }

    /// The bytes from `start` to `end`.
    fn read_range(&self, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
        let mut bytes = vec![0; len];
        self.file.read_exact_at(&mut bytes, start)?;
        Ok(bytes)
    }
}

impl Read for ArchiveFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Seek for ArchiveFile {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.at.checked_add_signed(d),
        };
        self.at = at.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the archive",
            )
        })?;
        Ok(self.at)
    }
}

/// Check the layout the central directory declares, before anything is
/// inflated: every entry's local header and data must occupy its own range
/// of the file (entries that share a local header or overlap are the
/// overlapping-entry ZIP bomb), and the declared uncompressed sizes must fit
/// the total budget. Reading then holds each entry to its declared size.
fn check_layout<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    limits: &Limits,
) -> Result<(), ArchiveError> {
    let mut spans: Vec<(u64, u64, String)> = Vec::with_capacity(archive.len());
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(|e| ArchiveError::NotZip {
            reason: e.to_string(),
        })?;
        let name = String::from_utf8_lossy(f.name_raw()).into_owned();
        declared = declared.saturating_add(f.size());
        let start = f.header_start();
        let data = f.data_start().unwrap_or(start).max(start);
        spans.push((start, data.saturating_add(f.compressed_size()), name));
    }
    spans.sort();
    for pair in spans.windows(2) {
        let ((a_start, a_end, a), (b_start, _, b)) = (&pair[0], &pair[1]);
        let reason = if a_start == b_start {
            format!("it shares its local header with entry `{a}` (an overlapping-entry ZIP bomb)")
        } else if b_start < a_end {
            format!("its data overlaps entry `{a}` (an overlapping-entry ZIP bomb)")
        } else {
            continue;
        };
        return Err(ArchiveError::BadEntry {
            entry: b.clone(),
            reason,
        });
    }
    if declared > limits.max_total_bytes {
        return Err(ArchiveError::TooLarge {
            what: format!(
                "its entries declare {declared} bytes uncompressed in all (refused before inflating anything)"
            ),
            limit: limits.max_total_bytes,
            entry: None,
        });
    }
    Ok(())
}

/// One entry, read and measured.
struct Entry {
    name: String,
    data: Option<Vec<u8>>,
}

fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    i: usize,
    limits: &Limits,
) -> Result<Entry, ArchiveError> {
    let nz = |e: zip::result::ZipError| ArchiveError::NotZip {
        reason: e.to_string(),
    };
    let mut f = archive.by_index(i).map_err(nz)?;
    let name = f
        .name()
        .map_err(|e| ArchiveError::BadEntry {
            entry: format!("#{i}"),
            reason: format!("name is not valid UTF-8 ({e})"),
        })?
        .into_owned();
    check_name(&name).map_err(|reason| ArchiveError::BadEntry {
        entry: name.clone(),
        reason,
    })?;
    let mode = f.unix_mode().unwrap_or(0);
    if f.is_symlink() || mode & 0o170000 == 0o120000 {
        return Err(ArchiveError::BadEntry {
            entry: name,
            reason: "symbolic links are not allowed".into(),
        });
    }
    if f.is_dir() || name.ends_with('/') {
        return Ok(Entry { name, data: None });
    }
    if mode & 0o170000 != 0 && mode & 0o170000 != 0o100000 {
        return Err(ArchiveError::BadEntry {
            entry: name,
            reason: "only regular files are allowed".into(),
        });
    }
    let compressed = f.compressed_size().max(1);
    let declared = f.size();
    // Room for the declared size (within the per-entry limit; the declared
    // sizes of all entries fit the total budget, checked before inflating).
    let room = declared.min(limits.max_entry_bytes);
    let mut data = Vec::with_capacity(usize::try_from(room).unwrap_or(0));
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| ArchiveError::BadEntry {
            entry: name.clone(),
            reason: format!("cannot decompress: {e}"),
        })?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let len = data.len() as u64;
        if len > declared {
            return Err(ArchiveError::TooLarge {
                what: "an entry expands beyond the size its header declares".into(),
                limit: declared,
                entry: Some(name),
            });
        }
        if len > limits.max_entry_bytes {
            return Err(ArchiveError::TooLarge {
                what: "an entry expands beyond the size limit".into(),
                limit: limits.max_entry_bytes,
                entry: Some(name),
            });
        }
        if len > (1 << 20) && len / compressed > limits.max_ratio {
            return Err(ArchiveError::TooLarge {
                what: format!(
                    "an entry expands more than {}-fold (a compression bomb)",
                    limits.max_ratio
                ),
                limit: limits.max_ratio,
                entry: Some(name),
            });
        }
    }
    data.shrink_to_fit();
    Ok(Entry {
        name,
        data: Some(data),
    })
}

/// An archive read and checked: its files, and its manifest when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadArchive {
    /// Every file, by path (the manifest included, if present).
    pub tree: MemoryTree,
    /// The parsed manifest, if the archive has one (already verified).
    pub manifest: Option<Manifest>,
}

/// Read ZIP bytes into a tree, checking everything first; nothing is returned unless all is well.
///
/// An archive whose files all sit in one top folder that is not a step
/// folder (`zip -r out.zip mytree/`) is read as if that folder were the root.
pub fn read_zip(bytes: &[u8], limits: &Limits) -> Result<ReadArchive, ArchiveError> {
    read_zip_from(Cursor::new(bytes), &raw_central_names(bytes), limits)
}

/// [`read_zip`] of an archive file, read in place: only its directory and
/// the entries being inflated are in memory, never the whole archive.
pub fn read_zip_file(file: &std::fs::File, limits: &Limits) -> Result<ReadArchive, ArchiveError> {
    let unreadable = |e: std::io::Error| ArchiveError::NotZip {
        reason: format!("cannot read the file: {e}"),
    };
    let archive = ArchiveFile::new(file).map_err(unreadable)?;
    let names = raw_central_names_of(&archive).map_err(unreadable)?;
    read_zip_from(archive, &names, limits)
}

/// [`read_zip`] from any reader of the archive; `raw` are the names its
/// central directory holds, read from the raw bytes (duplicates included).
fn read_zip_from<R: Read + Seek + Clone + Send + Sync>(
    reader: R,
    raw: &[Vec<u8>],
    limits: &Limits,
) -> Result<ReadArchive, ArchiveError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| ArchiveError::NotZip {
        reason: e.to_string(),
    })?;
    if archive.has_duplicate_names() || raw.len() > archive.len() {
        let mut seen = std::collections::HashSet::new();
        let dup = raw
            .iter()
            .find(|n| !seen.insert(n.as_slice()))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_else(|| "?".into());
        return Err(ArchiveError::Duplicate { entry: dup });
    }
    let count = archive.len().max(raw.len());
    if count > limits.max_entries {
        return Err(ArchiveError::TooLarge {
            what: format!("{count} entries"),
            limit: limits.max_entries as u64,
            entry: None,
        });
    }
    check_layout(&mut archive, limits)?;
    let entries: Vec<Entry> = (0..archive.len())
        .into_par_iter()
        .map_init(|| archive.clone(), |a, i| read_entry(a, i, limits))
        .collect::<Result<_, _>>()?;
    drop(archive);
    let mut total: u64 = 0;
    let mut tree = MemoryTree::default();
    for e in entries {
        if let Some(d) = e.data {
            total += d.len() as u64;
            if total > limits.max_total_bytes {
                return Err(ArchiveError::TooLarge {
                    what: "the archive expands beyond the total size limit".into(),
                    limit: limits.max_total_bytes,
                    entry: Some(e.name),
                });
            }
            match tree.files.entry(e.name) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(d);
                }
                std::collections::btree_map::Entry::Occupied(o) => {
                    return Err(ArchiveError::Duplicate {
                        entry: o.key().clone(),
                    })
                }
            }
        }
    }
    let tree = strip_single_top_folder(tree);
    let manifest = match tree.files.get(MANIFEST) {
        Some(b) => {
            let m = Manifest::parse(b)?;
            m.verify(&tree)?;
            Some(m)
        }
        None => None,
    };
    Ok(ReadArchive { tree, manifest })
}

fn strip_single_top_folder(tree: MemoryTree) -> MemoryTree {
    let mut tops = tree.files.keys().map(|p| p.split_once('/').map(|(t, _)| t));
    let Some(Some(first)) = tops.next() else {
        return tree;
    };
    let first = first.to_string();
    let all_same = tree
        .files
        .keys()
        .all(|p| p.split_once('/').is_some_and(|(t, _)| t == first));
    if !all_same || Kind::from_step(&first).is_some() {
        return tree;
    }
    let prefix = format!("{first}/");
    MemoryTree {
        files: tree
            .files
            .into_iter()
            .map(|(p, b)| (p[prefix.len()..].to_string(), b))
            .collect(),
    }
}

/// Pack a folder's tree as ZIP bytes. A `manifest.json` that matches the
/// files is kept byte for byte; one that does not (or none) is (re)made from
/// `source` and `created_at`, keeping the old one's source and time if it parses.
pub fn pack(
    tree: &MemoryTree,
    source: ManifestSource,
    created_at: &str,
) -> Result<(Vec<u8>, bool), ArchiveError> {
    let mut tree = tree.clone();
    let existing = tree.files.get(MANIFEST).map(|b| Manifest::parse(b));
    let rewritten = match existing {
        Some(Ok(m)) if m.verify(&tree).is_ok() => false,
        Some(Ok(m)) => {
            let fresh = Manifest::for_tree(&tree, m.source.clone(), &m.created_at, m.agent.clone());
            tree.files.insert(MANIFEST.to_string(), fresh.to_bytes());
            true
        }
        _ => {
            let fresh = Manifest::for_tree(&tree, source, created_at, None);
            tree.files.insert(MANIFEST.to_string(), fresh.to_bytes());
            true
        }
    };
    Ok((write_zip(tree)?, rewritten))
}

/// Write a tree with a fresh manifest as ZIP bytes.
pub fn write_with_manifest(
    mut tree: MemoryTree,
    manifest: &Manifest,
) -> Result<Vec<u8>, ArchiveError> {
    tree.files.insert(MANIFEST.to_string(), manifest.to_bytes());
    write_zip(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> MemoryTree {
        let mut t = MemoryTree::default();
        t.files.insert("agents/a.yaml".into(), b"x: 1\n".to_vec());
        t.files.insert("tools/t.yaml".into(), b"y: 2\n".to_vec());
        t
    }

    #[test]
    fn write_is_deterministic_and_round_trips() {
        let t = tree();
        let m = Manifest::for_tree(&t, ManifestSource::default(), "2026-01-01T00:00:00Z", None);
        let a = write_with_manifest(t.clone(), &m).unwrap();
        let b = write_with_manifest(t.clone(), &m).unwrap();
        assert_eq!(a, b);
        let back = read_zip(&a, &Limits::default()).unwrap();
        assert_eq!(back.manifest.unwrap(), m);
        assert_eq!(back.tree.files.get("agents/a.yaml").unwrap(), b"x: 1\n");
    }

    /// Reading an archive from its file gives what reading its bytes gives:
    /// the same tree and manifest, or the same refusal, for a good archive,
    /// one with a comment after its directory, one with a name twice, a
    /// cut-off one, an empty file and a file that is not a ZIP.
    #[test]
    fn an_archive_read_from_its_file_reads_as_its_bytes_do() {
        let t = nine_agents();
        let m = Manifest::for_tree(&t, ManifestSource::default(), "2026-01-01T00:00:00Z", None);
        let good = write_with_manifest(t, &m).unwrap();
        let mut commented = good.clone();
        let at = commented.len() - 2;
        commented[at..].copy_from_slice(&5u16.to_le_bytes());
        commented.extend_from_slice(b"hello");
        let mut pair = tree();
        pair.files
            .insert("agents/b.yaml".into(), b"z: 3\n".to_vec());
        let mut twice = write_zip(pair).unwrap();
        let from: &[u8] = b"agents/b.yaml";
        for i in 0..twice.len() - from.len() {
            if &twice[i..i + from.len()] == from {
                twice[i..i + from.len()].copy_from_slice(b"agents/a.yaml");
            }
        }
        let cut = good[..good.len() / 2].to_vec();
        let cases = [
            good,
            commented,
            twice,
            cut,
            Vec::new(),
            b"not a zip".to_vec(),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, bytes) in cases.iter().enumerate() {
            let path = dir.path().join(format!("{i}.zip"));
            std::fs::write(&path, bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let from_file = read_zip_file(&file, &Limits::default()).map_err(|e| e.to_string());
            let from_bytes = read_zip(bytes, &Limits::default()).map_err(|e| e.to_string());
            assert_eq!(from_file, from_bytes, "case {i}");
            assert_eq!(from_file.is_ok(), i < 2, "case {i}: {from_file:?}");
        }
    }

    /// Nine entries of growing size.
    fn nine_agents() -> MemoryTree {
        let mut t = MemoryTree::default();
        for i in 0..9 {
            let body = format!("name: r{i}\ntext: {}\n", "words ".repeat(i * 40));
            t.files
                .insert(format!("agents/r{i}.yaml"), body.into_bytes());
        }
        t
    }

    #[test]
    fn the_archive_is_the_same_however_its_parts_are_cut() {
        let t = nine_agents();
        let whole = write_zip_in_parts(t.clone(), 100).unwrap();
        for part in [1, 2, 4] {
            assert_eq!(
                write_zip_in_parts(t.clone(), part).unwrap(),
                whole,
                "parts of {part}"
            );
        }
        let back = read_zip(&whole, &Limits::default()).unwrap();
        assert_eq!(back.tree, t);
    }

    #[test]
    fn parts_packed_in_any_order_join_into_the_same_archive() {
        let mut t = nine_agents();
        t.files.insert("tools/t.yaml".into(), b"name: t\n".to_vec());
        let whole = write_zip(t.clone()).unwrap();
        let files: Vec<(String, Vec<u8>)> = t.files.clone().into_iter().collect();
        // Parts cut across the name order (every third file), packed out of order.
        let parts: Vec<PackedPart> = (0..3)
            .rev()
            .map(|k| {
                let part = files.iter().skip(k).step_by(3).cloned().collect();
                pack_entries(part).unwrap()
            })
            .collect();
        assert_eq!(join_parts(parts).unwrap(), whole);
    }

    /// Parts spilled to a temporary file join into the archive the parts
    /// in memory make, whatever their order, including parts bigger than
    /// the window a spilled part is read back through (64 KB).
    #[test]
    fn spilled_parts_join_into_the_same_archive() {
        let mut t = nine_agents();
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        t.files.insert("documents/big.bin".into(), noise);
        let whole = write_zip(t.clone()).unwrap();
        let files: Vec<(String, Vec<u8>)> = t.files.clone().into_iter().collect();
        let mut spill = SpilledParts::new().unwrap();
        for k in (0..4).rev() {
            let part = files.iter().skip(k).step_by(4).cloned().collect();
            spill.add(pack_entries(part).unwrap()).unwrap();
        }
        let out = spill.join_into(Cursor::new(Vec::new())).unwrap();
        assert!(out.into_inner() == whole, "the spilled join differs");
    }

    /// A writer that counts the seeks that reach it.
    struct SeekCount {
        bytes: Cursor<Vec<u8>>,
        seeks: usize,
    }

    impl Write for SeekCount {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.bytes.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for SeekCount {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.seeks += 1;
            self.bytes.seek(to)
        }
    }

    /// A join's seeks of its output do not grow with its entries (a
    /// buffered file flushes on every seek).
    #[test]
    fn a_join_seeks_its_output_as_often_for_any_number_of_entries() {
        let seeks_for = |count: usize| {
            let mut t = MemoryTree::default();
            for i in 0..count {
                t.files.insert(
                    format!("tools/t{i}.yaml"),
                    format!("name: t{i}\n").into_bytes(),
                );
            }
            let whole = write_zip(t.clone()).unwrap();
            let part = pack_entries(t.files.into_iter().collect()).unwrap();
            let out = SeekCount {
                bytes: Cursor::new(Vec::new()),
                seeks: 0,
            };
            let out = join_archives(vec![Cursor::new(part.0)], out).unwrap();
            assert!(out.bytes.into_inner() == whole, "the join differs");
            out.seeks
        };
        assert_eq!(seeks_for(10), seeks_for(1000));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("../x").is_err());
        assert!(check_name("a/../x").is_err());
        assert!(check_name("/etc/passwd").is_err());
        assert!(check_name("C:/x").is_err());
        assert!(check_name("a\\b").is_err());
        assert!(check_name("agents/a.yaml").is_ok());
        assert!(check_name("agents/").is_ok());
    }
}
