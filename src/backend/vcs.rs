//! The only module that names git2: repositories, commits, tags and trees at revisions.
//!
//! ferry reads trees straight out of git objects (no checkout), records the
//! commit each apply came from, and tags publishes. Everything here takes
//! paths and revisions and gives back plain data; [`GitTagger`] is the
//! publish-tag port of [`crate::domain::tagging`] over it. Writing a commit of a
//! tenant folder writes only the blobs and trees that changed since the
//! parent commit (a `TreeBuilder` per changed folder); comparing two
//! revisions skips every subtree whose ID is equal on both sides, so both
//! cost in proportion to the change, not to the tenant.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository, Signature, Tree, TreeEntry, TreeWalkMode, TreeWalkResult};
use rayon::prelude::*;

use super::{git_index, git_pack};
use crate::domain::tagging::{PublishTagger, TagError};
use crate::domain::tree::{Irregular, Listing, SourceError, TreeSource, MAX_FILE_BYTES};

/// An error of a git operation.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// git2 failed.
    #[error("git: {message}")]
    Git {
        /// What git said.
        message: String,
    },
    /// No git repository holds the folder.
    #[error("{path} is not inside a git repository")]
    NoRepo {
        /// The folder.
        path: String,
    },
    /// A revision does not name a commit. Its text is ferry's, not git's,
    /// and ends in a `hint:` line: the closest branch or tag, or how to list them.
    #[error("no branch, tag or commit named `{rev}`\nhint: {}", suggestion.as_deref().map(|s| format!("did you mean `{s}`?")).unwrap_or_else(|| "`git branch -a` and `git tag` list the names there are".to_string()))]
    BadRevision {
        /// The revision asked for.
        rev: String,
        /// The closest branch or tag name, if one is close.
        suggestion: Option<String>,
    },
    /// The folder is outside the repository's working tree.
    #[error("{path} is outside the git working tree {workdir}")]
    Outside {
        /// The folder.
        path: String,
        /// The working tree.
        workdir: String,
    },
    /// No identity to commit or tag as.
    #[error("git has no identity to commit as: set user.name and user.email (or GIT_COMMITTER_NAME and GIT_COMMITTER_EMAIL)")]
    NoIdentity,
    /// The tag exists already.
    #[error("git tag `{name}` exists already")]
    TagExists {
        /// The tag.
        name: String,
    },
}

impl From<git2::Error> for VcsError {
    fn from(e: git2::Error) -> Self {
        VcsError::Git {
            message: e.message().to_string(),
        }
    }
}

/// Who commits or tags: name and e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name.
    pub name: String,
    /// The e-mail address.
    pub email: String,
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

/// Open the repository holding `dir`, and the path of `dir/rel` inside it (`/` separated).
/// Read objects the way the git CLI does: trust an object's ID instead of
/// re-hashing its inflated bytes on every read (zlib's checksum still
/// catches a damaged object). libgit2's default re-hash is a quarter of a
/// `plan --ref` on a big folder. The setting is process-wide; it changes
/// no object that is written.
fn read_objects_as_git_does() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

fn open_at(dir: &Path, rel: &str) -> Result<(Repository, String), VcsError> {
    read_objects_as_git_does();
    let repo = Repository::discover(dir).map_err(|_| VcsError::NoRepo {
        path: dir.display().to_string(),
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| VcsError::NoRepo {
            path: dir.display().to_string(),
        })?
        .to_path_buf();
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (w, d) = (canon(&workdir), canon(dir));
    let inner = d.strip_prefix(&w).map_err(|_| VcsError::Outside {
        path: dir.display().to_string(),
        workdir: workdir.display().to_string(),
    })?;
    let mut parts: Vec<String> = inner
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(str::to_string));
    Ok((repo, parts.join("/")))
}

fn peel_commit<'r>(repo: &'r Repository, rev: &str) -> Result<git2::Commit<'r>, VcsError> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| VcsError::BadRevision {
            rev: rev.to_string(),
            suggestion: closest_ref_name(repo, rev),
        })
}

/// The branch or tag name closest to `rev`, for a did-you-mean.
fn closest_ref_name(repo: &Repository, rev: &str) -> Option<String> {
    let mut names: Vec<String> = repo
        .references()
        .ok()?
        .flatten()
        .filter_map(|r| r.shorthand().ok().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    crate::domain::suggest::closest(rev, names.iter().map(String::as_str)).map(str::to_string)
}

/// The full ID of the commit `rev` names, in the repository holding `dir`.
pub fn resolve_commit(dir: &Path, rev: &str) -> Result<String, VcsError> {
    let (repo, _) = open_at(dir, "")?;
    let id = peel_commit(&repo, rev)?.id();
    Ok(id.to_string())
}

/// The commit HEAD points at, if the repository has one.
pub fn head_commit(dir: &Path) -> Result<Option<String>, VcsError> {
    let (repo, _) = open_at(dir, "")?;
    let head = match repo.head() {
        Ok(h) => h,
        Err(_) => return Ok(None),
    };
    Ok(head.peel_to_commit().ok().map(|c| c.id().to_string()))
}

/// Whether `ancestor` is `descendant` or one of its ancestors.
pub fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> Result<bool, VcsError> {
    let (repo, _) = open_at(dir, "")?;
    let a = match Oid::from_str(ancestor)
        .ok()
        .and_then(|o| repo.find_commit(o).ok())
    {
        Some(c) => c.id(),
        None => return Ok(false),
    };
    let d = peel_commit(&repo, descendant)?.id();
    Ok(a == d || repo.graph_descendant_of(d, a)?)
}

/// The subtree at `prefix` of a commit's tree, if there is one.
fn subtree<'r>(
    repo: &'r Repository,
    root: &Tree<'r>,
    prefix: &str,
) -> Result<Option<Tree<'r>>, VcsError> {
    if prefix.is_empty() {
        return Ok(Some(root.clone()));
    }
    let entry = match root.get_path(Path::new(prefix)) {
        Ok(e) => e,
        Err(_) => return Ok(None),
    };
    if entry.kind() != Some(ObjectType::Tree) {
        return Ok(None);
    }
    Ok(Some(repo.find_tree(entry.id())?))
}

/// Folder trees already read, by path relative to the tenant folder.
type ReadFolders<'r> = std::collections::HashMap<String, Tree<'r>>;

/// Every blob under a tree: relative path to (ID, file mode).
fn blobs_of(tree: &Tree<'_>) -> BTreeMap<String, (Oid, i32)> {
    let mut out = BTreeMap::new();
    let _ = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(ObjectType::Blob) {
            let name = entry.name().unwrap_or_default();
            out.insert(format!("{dir}{name}"), (entry.id(), entry.filemode()));
        }
        TreeWalkResult::Ok
    });
    out
}

/// A folder's regular files by path, and its other entries.
type FolderFiles = (BTreeMap<String, Oid>, Vec<Irregular>);

/// The entries under a tree, split: regular file blobs (modes 100644 and
/// 100755) by path, and everything else (links, mode 120000; submodules,
/// commit entries) as [`Irregular`], never to be read.
fn files_of(tree: &Tree<'_>) -> FolderFiles {
    let mut files = BTreeMap::new();
    let mut irregular = Vec::new();
    let _ = tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        sort_entry(entry, path, &mut files, &mut irregular);
        TreeWalkResult::Ok
    });
    irregular.sort_by(|a, b| a.path.cmp(&b.path));
    (files, irregular)
}

/// File one tree entry at `path`: a regular blob into `files`, a link,
/// submodule or other special entry into `irregular`, a subtree nowhere.
fn sort_entry(
    entry: &git2::TreeEntry<'_>,
    path: String,
    files: &mut BTreeMap<String, Oid>,
    irregular: &mut Vec<Irregular>,
) {
    let what = match (entry.kind(), entry.filemode()) {
        (Some(ObjectType::Tree), _) => return,
        (Some(ObjectType::Blob), 0o100644 | 0o100755) => {
            files.insert(path, entry.id());
            return;
        }
        (Some(ObjectType::Blob), 0o120000) => "symbolic link",
        (Some(ObjectType::Commit), _) => "git submodule",
        _ => "special git entry",
    };
    irregular.push(Irregular { path, what });
}

/// The files of `units` under a tenant's tree, split as [`files_of`] does:
/// each unit's folder is looked up once, and of its entries only those
/// sharing a unit's stem are kept.
fn unit_files<'r>(
    repo: &'r Repository,
    tenant: &Tree<'r>,
    units: &std::collections::HashSet<String>,
    read: &ReadFolders<'r>,
) -> Result<FolderFiles, VcsError> {
    let mut stems: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for unit in units {
        if let Some((folder, file)) = unit.rsplit_once('/') {
            let stem = file.strip_suffix(".yaml").unwrap_or(file);
            stems.entry(folder).or_default().push(stem);
        }
    }
    let mut files = BTreeMap::new();
    let mut irregular = Vec::new();
    for (folder, wanted) in stems {
        let tree = match read.get(folder) {
            Some(t) => Some(t.clone()),
            None => subtree(repo, tenant, folder)?,
        };
        let Some(tree) = tree else {
            continue;
        };
        for entry in tree.iter() {
            let name = entry.name().unwrap_or_default();
            let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
            if !wanted.contains(&stem) {
                continue;
            }
            sort_entry(
                &entry,
                format!("{folder}/{name}"),
                &mut files,
                &mut irregular,
            );
        }
    }
    irregular.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, irregular))
}

/// A tenant tree read straight from the git object database at one commit.
pub struct GitTreeSource {
    repo: Mutex<Repository>,
    commit: String,
    prefix: String,
    blobs: BTreeMap<String, Oid>,
    irregular: Vec<Irregular>,
    present: bool,
}

impl std::fmt::Debug for GitTreeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitTreeSource")
            .field("commit", &self.commit)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl GitTreeSource {
    /// The folder `dir/rel` (e.g. the repo root and `tenants/acme-dev`) at revision `rev`.
    pub fn open(dir: &Path, rel: &str, rev: &str) -> Result<GitTreeSource, VcsError> {
        Self::open_with(dir, rel, rev, |_, folder| Ok(files_of(folder)))
    }

    /// Only the files of the given YAML units (`agents/bot.yaml`: the YAML
    /// and the files beside it that share its stem, such as a document's
    /// content) of the folder `dir/rel` at revision `rev`, looked up by path:
    /// the trees read are the folders of those units, never the whole
    /// tenant. A unit the commit does not have is simply not listed.
    pub fn open_units(
        dir: &Path,
        rel: &str,
        rev: &str,
        units: &std::collections::HashSet<String>,
    ) -> Result<GitTreeSource, VcsError> {
        Self::open_with(dir, rel, rev, |repo, folder| {
            unit_files(repo, folder, units, &ReadFolders::new())
        })
    }

    /// The folder `dir/rel` at `rev`, with the files `pick` lists from its tree.
    fn open_with(
        dir: &Path,
        rel: &str,
        rev: &str,
        pick: impl FnOnce(&Repository, &Tree<'_>) -> Result<FolderFiles, VcsError>,
    ) -> Result<GitTreeSource, VcsError> {
        let (repo, prefix) = open_at(dir, rel)?;
        let (commit, (blobs, irregular), present) = {
            let c = peel_commit(&repo, rev)?;
            let root = c.tree()?;
            let folder = subtree(&repo, &root, &prefix)?;
            let files = match &folder {
                Some(t) => pick(&repo, t)?,
                None => Default::default(),
            };
            (c.id().to_string(), files, folder.is_some())
        };
        Ok(GitTreeSource {
            repo: Mutex::new(repo),
            commit,
            prefix,
            blobs,
            irregular,
            present,
        })
    }

    /// The full commit ID the tree was read at.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// Whether the folder exists at that commit.
    pub fn exists(&self) -> bool {
        self.present
    }
}

impl TreeSource for GitTreeSource {
    fn describe(&self) -> String {
        format!(
            "{}:{}",
            &self.commit[..self.commit.len().min(12)],
            self.prefix
        )
    }

    fn list(&self) -> Result<Vec<String>, SourceError> {
        Ok(self.listing()?.into_paths())
    }

    fn listing(&self) -> Result<Listing, SourceError> {
        if !self.exists() {
            return Err(SourceError::Missing {
                path: self.describe(),
            });
        }
        Ok(Listing {
            files: self.blobs.keys().cloned().collect(),
            irregular: self.irregular.clone(),
        })
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let shown = || format!("{}/{path}", self.describe());
        if let Some(i) = self.irregular.iter().find(|i| i.path == path) {
            return Err(SourceError::NotRegular {
                path: shown(),
                what: i.what,
            });
        }
        let oid = self
            .blobs
            .get(path)
            .ok_or_else(|| SourceError::Missing { path: shown() })?;
        let repo = self.repo.lock().map_err(|_| SourceError::Read {
            path: path.to_string(),
            reason: "git repository lock poisoned".into(),
        })?;
        let git = |e: git2::Error| SourceError::Read {
            path: shown(),
            reason: e.message().to_string(),
        };
        // The size from the object header, before the blob is loaded.
        let (size, _) = repo.odb().map_err(git)?.read_header(*oid).map_err(git)?;
        if size as u64 > MAX_FILE_BYTES {
            return Err(SourceError::TooLarge {
                path: shown(),
                limit: MAX_FILE_BYTES,
            });
        }
        let blob = repo.find_blob(*oid).map_err(git)?;
        Ok(blob.content().to_vec())
    }
}

/// The ID of the tree at `dir/rel` in revision `rev`, when it has that folder.
pub fn folder_tree_id(dir: &Path, rel: &str, rev: &str) -> Result<Option<String>, VcsError> {
    let (repo, prefix) = open_at(dir, rel)?;
    let commit = peel_commit(&repo, rev)?;
    let root = commit.tree()?;
    let id = subtree(&repo, &root, &prefix)?.map(|t| t.id().to_string());
    Ok(id)
}

/// Paths (relative to `rel`) whose content differs between two commits,
/// skipping every subtree whose ID is equal on both sides.
pub fn changed_paths(dir: &Path, rel: &str, from: &str, to: &str) -> Result<Vec<String>, VcsError> {
    Ok(changed_paths_and_units(dir, rel, from, to, |_| None)?.0)
}

/// [`changed_paths`], and the files of the units `units_of` picks from
/// them (as [`GitTreeSource::open_units`] at `to`), read through the same
/// repository handle: the changed folders' trees the comparison read are
/// not read again. No source when `units_of` picks none or `to` has no
/// folder `rel`.
pub fn changed_paths_and_units(
    dir: &Path,
    rel: &str,
    from: &str,
    to: &str,
    units_of: impl FnOnce(&[String]) -> Option<std::collections::HashSet<String>>,
) -> Result<(Vec<String>, Option<GitTreeSource>), VcsError> {
    let (repo, prefix) = open_at(dir, rel)?;
    let (out, picked) = {
        let a = peel_commit(&repo, from)?.tree()?;
        let to_commit = peel_commit(&repo, to)?;
        let b = to_commit.tree()?;
        let ta = subtree(&repo, &a, &prefix)?;
        let tb = subtree(&repo, &b, &prefix)?;
        let mut out = Vec::new();
        let mut read = ReadFolders::new();
        diff_trees(&repo, ta.as_ref(), tb.as_ref(), "", &mut out, &mut read)?;
        out.sort();
        let picked = match (units_of(&out), &tb) {
            (Some(units), Some(folder)) => Some((
                to_commit.id().to_string(),
                unit_files(&repo, folder, &units, &read)?,
            )),
            _ => None,
        };
        (out, picked)
    };
    let source = picked.map(|(commit, (blobs, irregular))| GitTreeSource {
        repo: Mutex::new(repo),
        commit,
        prefix,
        blobs,
        irregular,
        present: true,
    });
    Ok((out, source))
}

/// The paths under `dir` whose blobs differ between trees `a` and `b`
/// (added, removed or changed), recursing only into subtrees whose IDs
/// differ. Both trees are walked side by side in git's entry order, so a
/// big folder costs one pass and no copies of its names.
fn diff_trees<'r>(
    repo: &'r Repository,
    a: Option<&Tree<'r>>,
    b: Option<&Tree<'r>>,
    dir: &str,
    out: &mut Vec<String>,
    read: &mut ReadFolders<'r>,
) -> Result<(), VcsError> {
    use std::cmp::Ordering;
    if let (Some(x), Some(y)) = (a, b) {
        if x.id() == y.id() {
            return Ok(());
        }
    }
    let mut xs = a.into_iter().flat_map(Tree::iter).peekable();
    let mut ys = b.into_iter().flat_map(Tree::iter).peekable();
    loop {
        let order = match (xs.peek(), ys.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => git_order(x, y),
        };
        let (x, y) = match order {
            Ordering::Less => (xs.next(), None),
            Ordering::Greater => (None, ys.next()),
            Ordering::Equal => (xs.next(), ys.next()),
        };
        if x.as_ref().map(TreeEntry::id) != y.as_ref().map(TreeEntry::id) {
            diff_entry(repo, x.as_ref(), y.as_ref(), dir, out, read)?;
        }
    }
}

/// Git's order of the entries of one tree: by name, a folder's name read as
/// if it ended in `/`.
fn git_order(a: &TreeEntry<'_>, b: &TreeEntry<'_>) -> std::cmp::Ordering {
    let (x, y) = (a.name_bytes(), b.name_bytes());
    let n = x.len().min(y.len());
    let end = |e: &TreeEntry<'_>, name: &[u8]| {
        name.get(n)
            .copied()
            .or((e.kind() == Some(ObjectType::Tree)).then_some(b'/'))
    };
    x[..n].cmp(&y[..n]).then_with(|| end(a, x).cmp(&end(b, y)))
}

/// One name whose entries differ between two trees: its path if either side
/// is a file, and the differences below it if either side is a folder.
fn diff_entry<'r>(
    repo: &'r Repository,
    x: Option<&TreeEntry<'_>>,
    y: Option<&TreeEntry<'_>>,
    dir: &str,
    out: &mut Vec<String>,
    read: &mut ReadFolders<'r>,
) -> Result<(), VcsError> {
    let Some(name) = y
        .or(x)
        .map(|e| String::from_utf8_lossy(e.name_bytes()).into_owned())
    else {
        return Ok(());
    };
    let path = format!("{dir}{name}");
    let as_tree = |e: Option<&TreeEntry<'_>>| -> Result<Option<Tree<'r>>, VcsError> {
        match e {
            Some(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
            _ => Ok(None),
        }
    };
    let is_blob = |e: Option<&TreeEntry<'_>>| e.is_some_and(|e| e.kind() == Some(ObjectType::Blob));
    let (tx, ty) = (as_tree(x)?, as_tree(y)?);
    if tx.is_some() || ty.is_some() {
        diff_trees(
            repo,
            tx.as_ref(),
            ty.as_ref(),
            &format!("{path}/"),
            out,
            read,
        )?;
    }
    if let Some(ty) = ty {
        read.insert(path.clone(), ty);
    }
    if is_blob(x) || is_blob(y) {
        out.push(path);
    }
    Ok(())
}

/// How a folder of the working tree compares with what a commit holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderDelta {
    /// Files (relative) that are new or differ.
    pub changed: Vec<String>,
    /// Files in step folders the commit has and `files` does not.
    pub removed: Vec<String>,
}

impl FolderDelta {
    /// Whether the commit holds exactly `files`.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Compare `files` with the subtree at `prefix` of `tree`: only files in
/// sub-folders (step folders) count as removed; files at the root are kept.
fn delta_against(tree: Option<&Tree<'_>>, files: &BTreeMap<String, Vec<u8>>) -> FolderDelta {
    let old = tree.map(blobs_of).unwrap_or_default();
    // Paths are borrowed, not copied: a whole-tenant commit compares
    // 100,000 files while it holds their bytes.
    let changed: Vec<&String> = files
        .par_iter()
        .filter(|(p, b)| {
            let id = Oid::hash_object(ObjectType::Blob, b).ok();
            id.is_none() || old.get(*p).map(|(old, _)| *old) != id
        })
        .map(|(p, _)| p)
        .collect();
    let mut delta = FolderDelta {
        changed: changed.into_iter().cloned().collect(),
        removed: Vec::new(),
    };
    for p in old.keys() {
        if p.contains('/') && !files.contains_key(p) {
            delta.removed.push(p.clone());
        }
    }
    delta
}

/// What `commit_folder` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The new commit, or `None` when HEAD held the files already.
    pub commit: Option<String>,
    /// What changed.
    pub delta: FolderDelta,
    /// Whether git's index was patched in place (only the changed entries
    /// rewritten, see [`git_index`]) rather than read and written whole by
    /// libgit2.
    pub index_patched: bool,
}

fn signature(repo: &Repository, who: Option<&Identity>) -> Result<Signature<'static>, VcsError> {
    match who {
        Some(i) => Ok(Signature::now(&i.name, &i.email)?),
        None => repo.signature().map_err(|_| VcsError::NoIdentity),
    }
}

/// Commit the folder `dir/rel` as holding exactly `files` (plus root files it
/// had), on top of HEAD. Only changed blobs and the trees above them are
/// written; the index is updated for just those paths, so the working tree
/// stays clean. The files must be on disk already (an export wrote them).
pub fn commit_folder(
    dir: &Path,
    rel: &str,
    files: BTreeMap<String, Vec<u8>>,
    message: &str,
    who: Option<&Identity>,
) -> Result<CommitOutcome, VcsError> {
    let (repo, prefix) = open_at(dir, rel)?;
    let Head { parent, root } = Head::of(&repo)?;
    let old = match &root {
        Some(r) => subtree(&repo, r, &prefix)?,
        None => None,
    };
    let delta = delta_against(old.as_ref(), &files);
    let head = Head { parent, root };
    write_delta(
        &repo,
        &prefix,
        head,
        delta,
        Blobs::Files(files),
        message,
        who,
    )
}

/// Commit the folder `dir/rel` as HEAD holds it with only `changed` files
/// (relative paths to their bytes, written on disk already) replaced and
/// `removed` files taken out: the rest of the folder is never read. A
/// changed file equal to HEAD's is left out of the delta.
pub fn commit_changes(
    dir: &Path,
    rel: &str,
    changed: BTreeMap<String, Vec<u8>>,
    removed: &[String],
    message: &str,
    who: Option<&Identity>,
) -> Result<CommitOutcome, VcsError> {
    let (repo, prefix) = open_at(dir, rel)?;
    let Head { parent, root } = Head::of(&repo)?;
    let full = |p: &str| match prefix.as_str() {
        "" => p.to_string(),
        _ => format!("{prefix}/{p}"),
    };
    let at_head = |p: &str| -> Option<Oid> {
        root.as_ref()?
            .get_path(Path::new(&full(p)))
            .ok()
            .map(|e| e.id())
    };
    let mut delta = FolderDelta::default();
    for (p, bytes) in &changed {
        if at_head(p) != Some(Oid::hash_object(ObjectType::Blob, bytes)?) {
            delta.changed.push(p.clone());
        }
    }
    delta.removed = removed
        .iter()
        .filter(|p| at_head(p).is_some())
        .cloned()
        .collect();
    let head = Head { parent, root };
    write_delta(
        &repo,
        &prefix,
        head,
        delta,
        Blobs::Files(changed),
        message,
        who,
    )
}

/// HEAD's commit and tree, when the repo has a HEAD.
struct Head<'r> {
    parent: Option<git2::Commit<'r>>,
    root: Option<Tree<'r>>,
}

impl<'r> Head<'r> {
    fn of(repo: &'r Repository) -> Result<Head<'r>, VcsError> {
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let root = match &parent {
            Some(c) => Some(c.tree()?),
            None => None,
        };
        Ok(Head { parent, root })
    }
}

/// From this many changed files on, a commit writes its new objects as two
/// pack files instead of a loose file each: the blobs streamed into one
/// ([`write_blob_pack`]), the trees above them packed from memory.
const PACK_AT: usize = 256;

/// The blobs of a delta's changed files, for [`write_delta`].
enum Blobs {
    /// The files' bytes, by relative path (more than the changed ones, maybe).
    Files(BTreeMap<String, Vec<u8>>),
    /// Written already: one ID for each changed file, in the delta's order.
    Written(Vec<Oid>),
}

/// A folder commit fed its files a part at a time, as an export encodes
/// them ([`commit_folder`] takes them all at once): each part is hashed and
/// compared with HEAD's folder as it comes, and only the changed files are
/// kept, as compressed pack entries ([`git_pack::pack_entries`], about half
/// their bytes), so the caller never holds the tree. Paths relative to the
/// folder; the files must be on disk by [`StreamedCommit::finish`].
#[derive(Debug)]
pub struct StreamedCommit {
    dir: std::path::PathBuf,
    rel: String,
    at_head: BTreeMap<String, Oid>,
    seen: std::collections::HashSet<String>,
    changed: Vec<(String, git_pack::RawId, Vec<u8>)>,
}

impl StreamedCommit {
    /// Start a commit of the folder `dir/rel` on top of HEAD.
    pub fn begin(dir: &Path, rel: &str) -> Result<StreamedCommit, VcsError> {
        let (repo, prefix) = open_at(dir, rel)?;
        let Head { root, .. } = Head::of(&repo)?;
        let old = match &root {
            Some(r) => subtree(&repo, r, &prefix)?,
            None => None,
        };
        let at_head = old.as_ref().map(blobs_of).unwrap_or_default();
        Ok(StreamedCommit {
            dir: dir.to_path_buf(),
            rel: rel.to_string(),
            at_head: at_head.into_iter().map(|(p, (id, _))| (p, id)).collect(),
            seen: std::collections::HashSet::new(),
            changed: Vec::new(),
        })
    }

    /// Take one part's files (paths unique across parts).
    pub fn add(&mut self, files: &[(&str, &[u8])]) -> Result<(), VcsError> {
        let at_head = &self.at_head;
        // Each file is hashed once: the ID both compares and names it.
        let changed: Vec<(&str, &[u8], git_pack::RawId)> = files
            .par_iter()
            .filter_map(|(p, b)| {
                let id = git_pack::blob_id(b);
                let same = at_head.get(*p).map(|o| o.as_bytes()) == Some(id.as_slice());
                (!same).then_some((*p, *b, id))
            })
            .collect();
        let blobs: Vec<&[u8]> = changed.iter().map(|(_, b, _)| *b).collect();
        let entries = git_pack::compress_entries(&blobs).map_err(|e| VcsError::Git {
            message: format!("compressing {} blobs for {}: {e}", blobs.len(), self.rel),
        })?;
        // Copied here, on this thread, into bytes of their exact size: the
        // entries outlive every part, and would otherwise stay scattered
        // among the freed pages of the parts' encoding on the other cores.
        for ((path, _, id), entry) in changed.iter().zip(entries) {
            self.changed
                .push((path.to_string(), *id, entry.as_slice().to_vec()));
        }
        self.seen.extend(files.iter().map(|(p, _)| p.to_string()));
        Ok(())
    }

    /// Commit what was taken (files at the folder's root that no part had
    /// are kept, as by [`commit_folder`]).
    pub fn finish(
        mut self,
        message: &str,
        who: Option<&Identity>,
    ) -> Result<CommitOutcome, VcsError> {
        let (repo, prefix) = open_at(&self.dir, &self.rel)?;
        let head = Head::of(&repo)?;
        self.changed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let removed = self
            .at_head
            .keys()
            .filter(|p| p.contains('/') && !self.seen.contains(*p))
            .cloned()
            .collect();
        let delta = FolderDelta {
            changed: self.changed.iter().map(|(p, _, _)| p.clone()).collect(),
            removed,
        };
        if delta.is_empty() && head.parent.is_some() {
            return Ok(CommitOutcome {
                commit: None,
                delta,
                index_patched: false,
            });
        }
        let entries = self.changed.into_iter().map(|(_, id, e)| (id, e)).collect();
        let ids = write_entries(&repo, entries)?;
        write_delta(
            &repo,
            &prefix,
            head,
            delta,
            Blobs::Written(ids),
            message,
            who,
        )
    }
}

/// Write pack entries as blobs: a pack of their own from [`PACK_AT`] on,
/// else each a loose object. Their IDs, in order.
fn write_entries(
    repo: &Repository,
    entries: Vec<(git_pack::RawId, Vec<u8>)>,
) -> Result<Vec<Oid>, VcsError> {
    if entries.len() < PACK_AT {
        return entries
            .iter()
            .map(|(_, e)| {
                let bytes = git_pack::entry_blob(e).map_err(|e| pack_error(repo, 1, e))?;
                Ok(repo.blob(&bytes)?)
            })
            .collect();
    }
    write_pack(repo, entries.len(), |pack| pack.add_entries(entries))
}

/// Stream a pack of `count` blobs into the repo's object database: `fill`
/// adds them ([`git_pack::BlobPack`]); their IDs, in the order added.
fn write_pack(
    repo: &Repository,
    count: usize,
    fill: impl FnOnce(
        &mut git_pack::BlobPack<git2::OdbPackwriter<'_>>,
    ) -> std::io::Result<Vec<git_pack::RawId>>,
) -> Result<Vec<Oid>, VcsError> {
    let io = |e| pack_error(repo, count, e);
    let promised = u32::try_from(count).map_err(|_| VcsError::Git {
        message: format!("{count} blobs are too many for one pack"),
    })?;
    let odb = repo.odb()?;
    let mut pack = git_pack::BlobPack::start(odb.packwriter()?, promised).map_err(io)?;
    let ids = fill(&mut pack).map_err(io)?;
    pack.finish().map_err(io)?.commit()?;
    ids.iter()
        .map(|id| Oid::from_bytes(id).map_err(VcsError::from))
        .collect()
}

/// A failed write of `count` blobs into the repo, naming the repo.
fn pack_error(repo: &Repository, count: usize, e: std::io::Error) -> VcsError {
    VcsError::Git {
        message: format!("writing {count} blobs into {}: {e}", repo.path().display()),
    }
}

/// Commit `delta` (its changed files' bytes or blobs in `blobs`) on top of `head`,
/// writing only the changed blobs and the trees above them, and keep the
/// index in step for just those paths.
fn write_delta(
    repo: &Repository,
    prefix: &str,
    head: Head<'_>,
    delta: FolderDelta,
    blobs: Blobs,
    message: &str,
    who: Option<&Identity>,
) -> Result<CommitOutcome, VcsError> {
    let Head { parent, root } = head;
    if delta.is_empty() && parent.is_some() {
        return Ok(CommitOutcome {
            commit: None,
            delta,
            index_patched: false,
        });
    }
    let full = |p: &str| {
        if prefix.is_empty() {
            p.to_string()
        } else {
            format!("{prefix}/{p}")
        }
    };
    // Writes the blobs and the trees above them. Each file's bytes are
    // dropped once its blob is written: a whole-tenant commit otherwise
    // holds the tree twice, once here and once in the pack being made.
    // A big delta's blobs are streamed into a pack of their own first.
    let (packed, mut files) = match blobs {
        Blobs::Written(ids) => (ids, BTreeMap::new()),
        Blobs::Files(mut files) if delta.changed.len() >= PACK_AT => {
            (write_blob_pack(repo, &delta.changed, &mut files)?, files)
        }
        Blobs::Files(files) => (Vec::new(), files),
    };
    let mut write_objects = |target: &Repository| -> Result<Written, VcsError> {
        let (mut ids, mut changes) = (Vec::new(), BTreeMap::new());
        for (i, p) in delta.changed.iter().enumerate() {
            if let Some(id) = packed.get(i) {
                changes.insert(full(p), Some(*id));
            } else if let Some(bytes) = files.remove(p) {
                let id = target.blob(&bytes)?;
                ids.push(id);
                changes.insert(full(p), Some(id));
            }
        }
        for p in &delta.removed {
            changes.insert(full(p), None);
        }
        let root = match &root {
            Some(r) => Some(target.find_tree(r.id())?),
            None => None,
        };
        let tree = match rebuild(target, root.as_ref(), &changes, &mut ids)? {
            Some(t) => t,
            None => {
                let empty = target.treebuilder(None)?.write()?;
                ids.push(empty);
                empty
            }
        };
        Ok(Written { tree, ids, changes })
    };
    let sig = signature(repo, who)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let written = if delta.changed.len() >= PACK_AT {
        write_packed(repo, write_objects)?
    } else {
        write_objects(repo)?
    };
    let changes = written.changes;
    let tree = repo.find_tree(written.tree)?;
    let commit = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    let index_patched = update_index(repo, root.as_ref(), &tree, &changes)?;
    Ok(CommitOutcome {
        commit: Some(commit.to_string()),
        delta,
        index_patched,
    })
}

/// Write the blobs of `changed` (taken out of `files`, which must hold each)
/// as one pack streamed into the repo's object database ([`git_pack`]), a
/// batch at a time; their IDs, in the order of `changed`.
fn write_blob_pack(
    repo: &Repository,
    changed: &[String],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Vec<Oid>, VcsError> {
    // Every changed file must have its bytes before the pack is started.
    if let Some(p) = changed.iter().find(|p| !files.contains_key(*p)) {
        return Err(VcsError::Git {
            message: format!("no bytes for the changed file {p}"),
        });
    }
    write_pack(repo, changed.len(), |pack| {
        let mut ids = Vec::with_capacity(changed.len());
        for batch in changed.chunks(1024) {
            let blobs: Vec<Vec<u8>> = batch.iter().filter_map(|p| files.remove(p)).collect();
            ids.extend(pack.add(&blobs)?);
        }
        Ok(ids)
    })
}

/// What a commit wrote: its root tree, every object ID, and each changed
/// path's blob (`None` for a removed one).
struct Written {
    tree: Oid,
    ids: Vec<Oid>,
    changes: BTreeMap<String, Option<Oid>>,
}

/// Write new objects as one pack file instead of a loose file each: `write`
/// writes them into memory (a mempack backend on a second handle of the
/// repo), and exactly the IDs it returns are packed and indexed. A big
/// commit's blobs are in their own pack by then ([`write_blob_pack`]), so
/// only the trees above them pass through memory.
fn write_packed(
    repo: &Repository,
    write: impl FnOnce(&Repository) -> Result<Written, VcsError>,
) -> Result<Written, VcsError> {
    let packing = Repository::open(repo.path())?;
    let odb = packing.odb()?;
    let _in_memory = odb.add_new_mempack_backend(1000)?;
    let written = write(&packing)?;
    let mut builder = packing.packbuilder()?;
    for id in &written.ids {
        builder.insert_object(*id, None)?;
    }
    let mut pack = git2::Buf::new();
    builder.write_buf(&mut pack)?;
    let mut writer = odb.packwriter()?;
    std::io::Write::write_all(&mut writer, &pack).map_err(|e| VcsError::Git {
        message: e.to_string(),
    })?;
    writer.commit()?;
    Ok(written)
}

/// Keep the index in step for just the changed paths (full paths to their
/// new blob, `None` when removed), from the blob IDs just written and the
/// files' stat data: nothing is read or hashed again. The index is patched
/// in place when `git_index` takes it (then `true`), else through libgit2.
fn update_index(
    repo: &Repository,
    old_root: Option<&Tree<'_>>,
    new_root: &Tree<'_>,
    changes: &BTreeMap<String, Option<Oid>>,
) -> Result<bool, VcsError> {
    let workdir = repo.workdir().map(Path::to_path_buf);
    let on_disk = |path: &str| workdir.as_ref().map(|w| w.join(path));
    let change = old_root.and_then(|old| index_change(old, new_root, changes, &on_disk));
    if let Some(change) = change {
        if git_index::patch_file(repo.path(), &change).unwrap_or(false) {
            return Ok(true);
        }
    }
    let mut index = repo.index()?;
    for (path, id) in changes {
        match id {
            Some(id) => index.add(&index_entry(path, *id, on_disk(path).as_deref()))?,
            None => {
                let _ = index.remove_path(Path::new(path));
            }
        }
    }
    index.write()?;
    Ok(false)
}

/// `changes` in the index's terms, with the trees of the folders above
/// each changed file before and after; `None` when a changed file sits in a
/// folder HEAD did not have (a new file, which only libgit2 adds).
fn index_change(
    old_root: &Tree<'_>,
    new_root: &Tree<'_>,
    changes: &BTreeMap<String, Option<Oid>>,
    on_disk: &dyn Fn(&str) -> Option<std::path::PathBuf>,
) -> Option<git_index::IndexChange> {
    let raw = |id: Oid| -> git_index::RawId { id.as_bytes().try_into().unwrap_or([0; 20]) };
    let tree_at = |root: &Tree<'_>, folder: &str| -> Option<Oid> {
        match folder {
            "" => Some(root.id()),
            f => root.get_path(Path::new(f)).ok().map(|e| e.id()),
        }
    };
    let mut change = git_index::IndexChange::default();
    for (path, id) in changes {
        let Some(id) = id else {
            change.removed.insert(path.clone());
            continue;
        };
        change
            .changed
            .insert(path.clone(), (raw(*id), on_disk(path)));
        for (i, _) in std::iter::once((0, "")).chain(path.match_indices('/')) {
            let folder = &path[..i];
            if !change.trees.contains_key(folder) {
                let old = tree_at(old_root, folder)?;
                let new = tree_at(new_root, folder)?;
                change
                    .trees
                    .insert(folder.to_string(), (raw(old), raw(new)));
            }
        }
    }
    Some(change)
}

/// The index entry of a file committed as blob `id`, with the stat data of
/// `on_disk` so that `git status` sees it unchanged (zeros when it cannot
/// be read, which git then checks by content).
fn index_entry(path: &str, id: Oid, on_disk: Option<&Path>) -> git2::IndexEntry {
    let stat = git_index::FileStat::of(on_disk);
    git2::IndexEntry {
        ctime: git2::IndexTime::new(stat.ctime.0 as i32, stat.ctime.1),
        mtime: git2::IndexTime::new(stat.mtime.0 as i32, stat.mtime.1),
        dev: stat.dev,
        ino: stat.ino,
        mode: 0o100644,
        uid: stat.uid,
        gid: stat.gid,
        file_size: stat.size,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// Rewrite `tree` with `changes` (full paths to a blob ID, or `None` to
/// remove), writing only the trees along changed paths (each added to `written`). `None` for an empty result.
fn rebuild(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    changes: &BTreeMap<String, Option<Oid>>,
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>, VcsError> {
    let mut builder = repo.treebuilder(tree)?;
    let mut sub: BTreeMap<String, BTreeMap<String, Option<Oid>>> = BTreeMap::new();
    for (path, change) in changes {
        match path.split_once('/') {
            None => match change {
                Some(id) => {
                    builder.insert(path, *id, 0o100644)?;
                }
                None => {
                    if builder.get(path)?.is_some() {
                        builder.remove(path)?;
                    }
                }
            },
            Some((first, rest)) => {
                sub.entry(first.to_string())
                    .or_default()
                    .insert(rest.to_string(), *change);
            }
        }
    }
    for (name, inner) in sub {
        let existing = match builder.get(&name)? {
            Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        };
        match rebuild(repo, existing.as_ref(), &inner, written)? {
            Some(id) => {
                builder.insert(&name, id, 0o040000)?;
            }
            None => {
                if builder.get(&name)?.is_some() {
                    builder.remove(&name)?;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    let id = builder.write()?;
    written.push(id);
    Ok(Some(id))
}

pub use crate::domain::tagging::Holding;

/// Which commit holds `dir/rel` exactly as `files`: HEAD, else `also` (e.g.
/// the commit last applied), else why not.
pub fn commit_holding(
    dir: &Path,
    rel: &str,
    files: &BTreeMap<String, Vec<u8>>,
    also: Option<&str>,
) -> Result<Holding, VcsError> {
    let (repo, prefix) = match open_at(dir, rel) {
        Ok(x) => x,
        Err(VcsError::NoRepo { path }) => {
            return Ok(Holding::NotHeld(format!(
                "{path} is not inside a git repository"
            )))
        }
        Err(e) => return Err(e),
    };
    let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let Some(head) = head else {
        return Ok(Holding::NotHeld(
            "the git repository has no commit yet".into(),
        ));
    };
    let mut first_reason = None;
    let mut candidates = vec![head];
    if let Some(c) = also
        .and_then(|a| Oid::from_str(a).ok())
        .and_then(|o| repo.find_commit(o).ok())
    {
        if c.id() != candidates[0].id() {
            candidates.push(c);
        }
    }
    for c in candidates {
        let root = c.tree()?;
        let t = subtree(&repo, &root, &prefix)?;
        if t.is_none() {
            first_reason.get_or_insert_with(|| format!("HEAD has no folder {prefix}"));
            continue;
        }
        let delta = delta_against(t.as_ref(), files);
        if delta.is_empty() {
            return Ok(Holding::Commit(c.id().to_string()));
        }
        first_reason.get_or_insert_with(|| {
            let mut all: Vec<&String> = delta.changed.iter().chain(&delta.removed).collect();
            all.sort();
            let n = all.len();
            let shown: Vec<&str> = all.iter().take(3).map(|s| s.as_str()).collect();
            format!(
                "{prefix} at HEAD differs from the published drafts in {n} file(s) ({}{})",
                shown.join(", "),
                if n > 3 { ", …" } else { "" }
            )
        });
    }
    Ok(Holding::NotHeld(first_reason.unwrap_or_default()))
}

/// HEAD's commit ID when HEAD holds `dir/rel` with the same tree ID as
/// `commit` does; `None` when it does not, or either cannot be read.
pub fn head_with_folder_of(dir: &Path, rel: &str, commit: &str) -> Option<String> {
    let (repo, prefix) = open_at(dir, rel).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    let at = repo.find_commit(Oid::from_str(commit).ok()?).ok()?;
    let folder_of = |c: &git2::Commit<'_>| -> Option<Oid> {
        Some(subtree(&repo, &c.tree().ok()?, &prefix).ok()??.id())
    };
    let same = folder_of(&head)? == folder_of(&at)?;
    same.then(|| head.id().to_string())
}

/// Create the annotated tag `name` on `commit` with `message`.
pub fn tag_annotated(
    dir: &Path,
    name: &str,
    commit: &str,
    message: &str,
    who: Option<&Identity>,
) -> Result<(), VcsError> {
    let (repo, _) = open_at(dir, "")?;
    if repo.find_reference(&format!("refs/tags/{name}")).is_ok() {
        return Err(VcsError::TagExists {
            name: name.to_string(),
        });
    }
    let obj = repo.find_object(Oid::from_str(commit)?, Some(ObjectType::Commit))?;
    let sig = signature(&repo, who)?;
    repo.tag(name, &obj, &sig, message, false)?;
    Ok(())
}

/// Delete a tag (undoing a publish that failed after tagging).
pub fn delete_tag(dir: &Path, name: &str) -> Result<(), VcsError> {
    let (repo, _) = open_at(dir, "")?;
    repo.tag_delete(name)?;
    Ok(())
}

/// Whether `dir` is inside a git repository.
pub fn is_repo(dir: &Path) -> bool {
    Repository::discover(dir).is_ok()
}

/// Set the identity git commits as in the repository at `dir` (its own config only).
pub fn set_local_identity(dir: &Path, who: &Identity) -> Result<(), VcsError> {
    let repo = Repository::open(dir)?;
    let mut cfg = repo.config()?;
    cfg.set_str("user.name", &who.name)?;
    cfg.set_str("user.email", &who.email)?;
    Ok(())
}

/// Publish tags in the git repository at `root`: the [`PublishTagger`] a
/// publish uses, from the CLI or from `ferry serve` running in a config repo.
#[derive(Debug, Clone)]
pub struct GitTagger {
    /// The repository (or a folder inside it).
    pub root: std::path::PathBuf,
    /// Who tags; default: the publisher, as `NAME <NAME@ferry.invalid>`.
    pub identity: Option<Identity>,
}

fn tag_error(e: VcsError) -> TagError {
    TagError {
        message: e.to_string(),
    }
}

impl PublishTagger for GitTagger {
    fn holding(
        &self,
        folder: &str,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Holding, TagError> {
        commit_holding(&self.root, folder, files, None).map_err(tag_error)
    }

    fn paths_at(&self, folder: &str, commit: &str) -> Option<Vec<String>> {
        let source = GitTreeSource::open(&self.root, folder, commit).ok()?;
        Some(source.list().unwrap_or_default())
    }

    fn head_with_folder_of(&self, folder: &str, commit: &str) -> Option<String> {
        head_with_folder_of(&self.root, folder, commit)
    }

    fn tag_exists(&self, name: &str) -> bool {
        open_at(&self.root, "")
            .map(|(repo, _)| repo.find_reference(&format!("refs/tags/{name}")).is_ok())
            .unwrap_or(false)
    }

    fn tag(
        &self,
        name: &str,
        commit: &str,
        message: &str,
        publisher: &str,
    ) -> Result<(), TagError> {
        let who = self.identity.clone().unwrap_or_else(|| Identity {
            name: publisher.to_string(),
            email: format!("{publisher}@ferry.invalid"),
        });
        tag_annotated(&self.root, name, commit, message, Some(&who)).map_err(tag_error)
    }
}

/// When `file` lies inside a git work tree and git does not ignore it: the
/// work tree's root and the file's path relative to it. `None` when there is
/// no work tree around the file, or the file is ignored.
pub fn unignored_in_worktree(file: &Path) -> Option<(std::path::PathBuf, String)> {
    let parent = file.parent()?;
    let repo = Repository::discover(parent).ok()?;
    let root = repo.workdir()?.canonicalize().ok()?;
    let dir = parent.canonicalize().ok()?;
    let name = file.file_name()?;
    let rel = dir.join(name).strip_prefix(&root).ok()?.to_path_buf();
    let rel_text = rel.to_string_lossy().replace('\\', "/");
    match repo.is_path_ignored(&rel) {
        Ok(false) => Some((root, rel_text)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `files` under `root/tenants/x` and commit them there.
    fn commit_on_disk(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> CommitOutcome {
        for (p, b) in files {
            let f = root.join("tenants/x").join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b).unwrap();
        }
        let who = Identity {
            name: "Test".into(),
            email: "test@example.invalid".into(),
        };
        commit_folder(root, "tenants/x", files.clone(), "commit", Some(&who)).unwrap()
    }

    fn loose_objects(root: &Path) -> usize {
        walkdir::WalkDir::new(root.join(".git/objects"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file() && !e.path().to_string_lossy().contains("/pack/"))
            .count()
    }

    /// Commit exactly `files` (path, text) under `tenants/x`, with no work tree.
    fn commit_exactly(repo: &Repository, files: &[(&str, &str)]) -> String {
        let mut index = git2::Index::new().unwrap();
        for (path, text) in files {
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: text.len() as u32,
                id: repo.blob(text.as_bytes()).unwrap(),
                flags: 0,
                flags_extended: 0,
                path: format!("tenants/x/{path}").into_bytes(),
            };
            index.add(&entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
        let who = Signature::now("Test", "test@example.invalid").unwrap();
        let parents: Vec<git2::Commit<'_>> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(Some("HEAD"), &who, &who, "c", &tree, &parents)
            .unwrap()
            .to_string()
    }

    /// HEAD is named when it holds the folder with the same tree as the
    /// commit asked about, whatever moved elsewhere; never when the folder
    /// moved, or the commit is unknown.
    #[test]
    fn head_is_named_when_it_holds_a_folder_as_a_commit_does() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = commit_exactly(&repo, &[("agents/a.yaml", "1"), ("tools/t.yaml", "1")]);
        let b = commit_exactly(&repo, &[("agents/a.yaml", "1"), ("tools/t.yaml", "2")]);
        let agents = "tenants/x/agents";
        assert_eq!(head_with_folder_of(dir.path(), agents, &a), Some(b.clone()));
        assert_eq!(head_with_folder_of(dir.path(), "tenants/x/tools", &a), None);
        assert_eq!(head_with_folder_of(dir.path(), "tenants/x/none", &a), None);
        let c = commit_exactly(&repo, &[("agents/a.yaml", "3"), ("tools/t.yaml", "2")]);
        assert_eq!(head_with_folder_of(dir.path(), agents, &a), None);
        assert_eq!(head_with_folder_of(dir.path(), agents, &c), Some(c.clone()));
        assert_eq!(
            head_with_folder_of(dir.path(), agents, "not-a-commit"),
            None
        );
        let unknown = "0123456789012345678901234567890123456789";
        assert_eq!(head_with_folder_of(dir.path(), agents, unknown), None);
    }

    #[test]
    fn changed_paths_walks_both_trees_in_git_order() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let a = commit_exactly(
            &repo,
            &[
                ("agents/a.yaml", "1"),
                ("agents/b.yaml", "1"),
                ("foo", "a file that becomes a folder"),
                ("foo.bar", "1"),
                ("gone/deep/x.yaml", "1"),
                ("same/s.yaml", "1"),
            ],
        );
        let b = commit_exactly(
            &repo,
            &[
                ("agents/a.yaml", "2"),
                ("agents/b.yaml", "1"),
                ("agents/c.yaml", "new"),
                ("foo.bar", "1"),
                ("foo/inside.yaml", "1"),
                ("same/s.yaml", "1"),
            ],
        );
        let changed = changed_paths(dir.path(), "tenants/x", &a, &b).unwrap();
        assert_eq!(
            changed,
            [
                "agents/a.yaml",
                "agents/c.yaml",
                "foo",
                "foo/inside.yaml",
                "gone/deep/x.yaml"
            ]
        );
        let back = changed_paths(dir.path(), "tenants/x", &b, &a).unwrap();
        assert_eq!(back, changed, "the same paths differ either way");
        assert!(changed_paths(dir.path(), "tenants/x", &a, &a)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn changed_units_are_read_with_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let files = |a: &'static str| {
            vec![
                ("agents/a.yaml", a),
                ("agents/a.txt", "beside a"),
                ("agents/b.yaml", "1"),
                ("tools/t.yaml", "1"),
            ]
        };
        let from = commit_exactly(&repo, &files("1"));
        let to = commit_exactly(&repo, &files("2"));
        let (changed, source) =
            changed_paths_and_units(dir.path(), "tenants/x", &from, &to, |changed| {
                Some(changed.iter().cloned().collect())
            })
            .unwrap();
        assert_eq!(changed, ["agents/a.yaml"]);
        let source = source.expect("the units' files");
        assert_eq!(source.commit(), to);
        assert_eq!(source.list().unwrap(), ["agents/a.txt", "agents/a.yaml"]);
        assert_eq!(source.read("agents/a.yaml").unwrap(), b"2");
        let (_, none) =
            changed_paths_and_units(dir.path(), "tenants/x", &from, &to, |_| None).unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn a_streamed_commit_is_the_commit_of_every_file_at_once() {
        let who = Identity {
            name: "Test".into(),
            email: "test@example.invalid".into(),
        };
        let files = |n: usize, tag: &str| -> BTreeMap<String, Vec<u8>> {
            (0..n)
                .map(|i| {
                    (
                        format!("tools/t{i:04}.yaml"),
                        format!("{tag} {i}\n").into_bytes(),
                    )
                })
                .chain([("tenant.toml".to_string(), b"name = \"x\"\n".to_vec())])
                .collect()
        };
        // A first commit, a big change (packed), a small one (loose), a removal.
        let rounds = [
            files(PACK_AT + 10, "a"),
            files(PACK_AT + 10, "b"),
            {
                let mut f = files(PACK_AT + 10, "b");
                f.insert("tools/t0001.yaml".into(), b"c\n".to_vec());
                f
            },
            files(5, "b"),
        ];
        let (at_once, streamed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for root in [at_once.path(), streamed.path()] {
            Repository::init(root).unwrap();
        }
        for round in rounds {
            commit_on_disk(at_once.path(), &round);
            for (p, b) in &round {
                let f = streamed.path().join("tenants/x").join(p);
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(f, b).unwrap();
            }
            let old: Vec<String> = round.keys().cloned().collect();
            for gone in walkdir::WalkDir::new(streamed.path().join("tenants/x/tools"))
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
            {
                let rel = format!("tools/{}", gone.file_name().to_string_lossy());
                if !old.contains(&rel) {
                    std::fs::remove_file(gone.path()).unwrap();
                }
            }
            let mut commit = StreamedCommit::begin(streamed.path(), "tenants/x").unwrap();
            let all: Vec<(&str, &[u8])> = round
                .iter()
                .map(|(p, b)| (p.as_str(), b.as_slice()))
                .collect();
            for part in all.chunks(100) {
                commit.add(part).unwrap();
            }
            commit.finish("commit", Some(&who)).unwrap();
            let tree = |root: &Path| git(root, &["rev-parse", "HEAD^{tree}"]);
            assert_eq!(tree(at_once.path()), tree(streamed.path()));
            assert_eq!(git(streamed.path(), &["status", "--porcelain"]), "");
        }
        let fsck = git(streamed.path(), &["fsck", "--strict"]);
        assert!(!fsck.contains("error"), "{fsck}");
    }

    #[test]
    fn a_big_commit_is_two_packs_and_leaves_the_worktree_clean() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        Repository::init(root).unwrap();
        let mut files: BTreeMap<String, Vec<u8>> = (0..PACK_AT + 10)
            .map(|i| {
                (
                    format!("tools/t{i:04}.yaml"),
                    format!("name: t{i}\n").into_bytes(),
                )
            })
            .collect();
        files.insert("tenant.toml".into(), b"name = \"x\"\n".to_vec());
        assert!(commit_on_disk(root, &files).commit.is_some());
        let repo = Repository::open(root).unwrap();
        let head = repo.head().unwrap().peel_to_tree().unwrap();
        for (p, bytes) in &files {
            let entry = head.get_path(Path::new(&format!("tenants/x/{p}"))).unwrap();
            assert_eq!(repo.find_blob(entry.id()).unwrap().content(), &bytes[..]);
        }
        let statuses = repo.statuses(None).unwrap();
        assert!(
            statuses.iter().all(|s| s.status() == git2::Status::CURRENT),
            "the index and the work tree agree with the commit"
        );
        let packs = std::fs::read_dir(root.join(".git/objects/pack"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .count();
        assert_eq!(packs, 2, "one pack of blobs, one of the trees above them");
        assert_eq!(loose_objects(root), 1, "only the commit is a loose object");
        let fsck = git(root, &["fsck", "--strict"]);
        assert!(!fsck.contains("error"), "{fsck}");
        // A small change after it is written loose, on top of the packed tree.
        files.insert("tools/t0000.yaml".into(), b"name: changed\n".to_vec());
        assert!(commit_on_disk(root, &files).commit.is_some());
        // A blob, the four trees above it (tools, x, tenants, the root) and a commit.
        assert_eq!(loose_objects(root), 1 + 6);
        assert!(repo
            .statuses(None)
            .unwrap()
            .iter()
            .all(|s| s.status() == git2::Status::CURRENT));
    }

    fn git(root: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Change and remove files under `tenants/x` on disk, then commit only those.
    fn commit_some(root: &Path, changed: &[(&str, &str)], removed: &[&str]) -> CommitOutcome {
        let mut files = BTreeMap::new();
        for (p, text) in changed {
            let f = root.join("tenants/x").join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
            files.insert(p.to_string(), text.as_bytes().to_vec());
        }
        for p in removed {
            std::fs::remove_file(root.join("tenants/x").join(p)).unwrap();
        }
        let removed: Vec<String> = removed.iter().map(|p| p.to_string()).collect();
        let who = Identity {
            name: "Test".into(),
            email: "test@example.invalid".into(),
        };
        commit_changes(
            root,
            "tenants/x",
            files.clone(),
            &removed,
            "change",
            Some(&who),
        )
        .unwrap()
    }

    /// git itself finds the index, the work tree and HEAD in agreement, and
    /// the index's cached trees (which `git write-tree` trusts) are HEAD's.
    fn assert_clean(root: &Path) {
        assert_eq!(git(root, &["status", "--porcelain"]), "");
        assert_eq!(
            git(root, &["write-tree"]),
            git(root, &["rev-parse", "HEAD^{tree}"])
        );
    }

    fn three_files(root: &Path) {
        Repository::init(root).unwrap();
        let files: BTreeMap<String, Vec<u8>> = [
            ("tenant.toml", "name = \"x\"\n"),
            ("agents/a.yaml", "name: a\n"),
            ("agents/b.yaml", "name: b\n"),
            ("tools/t.yaml", "name: t\n"),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
        .collect();
        let first = commit_on_disk(root, &files);
        assert!(!first.index_patched, "new paths go through libgit2");
    }

    #[test]
    fn a_changed_file_is_patched_into_the_index_and_its_cached_trees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        three_files(root);
        // A file git was told to assume unchanged is checked again once ferry changed it.
        git(
            root,
            &[
                "update-index",
                "--assume-unchanged",
                "tenants/x/agents/a.yaml",
            ],
        );
        // git's own write-tree caches every folder's tree in the index.
        git(root, &["write-tree"]);
        let cached = |root: &Path| {
            let bytes = std::fs::read(root.join(".git/index")).unwrap();
            let at = bytes
                .windows(4)
                .position(|w| w == b"TREE")
                .expect("a TREE extension");
            let size = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            git_index::parse_tree_cache(&bytes[at + 8..at + 8 + size]).unwrap()
        };
        assert!(cached(root).iter().all(|t| t.id.is_some()));
        let done = commit_some(root, &[("agents/a.yaml", "name: a\nchanged: yes\n")], &[]);
        assert!(done.commit.is_some() && done.index_patched);
        let flags = git(root, &["ls-files", "-v", "tenants/x/agents/a.yaml"]);
        assert!(flags.starts_with("H "), "{flags}");
        let trees = cached(root);
        assert!(
            trees.iter().all(|t| t.id.is_some()),
            "the cache stays valid: {trees:?}"
        );
        assert_clean(root);
        // A second change on top, and a removal, which invalidates the folders above it.
        let done = commit_some(root, &[("tools/t.yaml", "name: t2\n")], &["agents/b.yaml"]);
        assert!(done.index_patched);
        let invalid: Vec<String> = cached(root)
            .into_iter()
            .filter(|t| t.id.is_none())
            .map(|t| t.path)
            .collect();
        assert_eq!(invalid, ["", "tenants", "tenants/x", "tenants/x/agents"]);
        assert_clean(root);
        assert_eq!(git(root, &["ls-files"]).lines().count(), 3);
    }

    #[test]
    fn an_index_the_patch_does_not_take_is_written_by_libgit2() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        three_files(root);
        // A new file.
        let done = commit_some(root, &[("agents/c.yaml", "name: c\n")], &[]);
        assert!(done.commit.is_some() && !done.index_patched);
        assert_clean(root);
        // Index version 4 (path compression).
        git(root, &["update-index", "--index-version", "4"]);
        let done = commit_some(root, &[("agents/c.yaml", "name: c2\n")], &[]);
        assert!(!done.index_patched);
        assert_clean(root);
        // A lock held by another git process: libgit2 reports it, nothing is committed twice.
        git(root, &["update-index", "--index-version", "2"]);
        std::fs::write(root.join(".git/index.lock"), b"").unwrap();
        let who = Identity {
            name: "Test".into(),
            email: "test@example.invalid".into(),
        };
        std::fs::write(root.join("tenants/x/agents/c.yaml"), "name: c3\n").unwrap();
        let files = BTreeMap::from([("agents/c.yaml".to_string(), b"name: c3\n".to_vec())]);
        let locked = commit_changes(root, "tenants/x", files.clone(), &[], "change", Some(&who));
        assert!(locked.is_err(), "{locked:?}");
        assert!(
            root.join(".git/index.lock").exists(),
            "another process's lock is left alone"
        );
    }

    #[test]
    fn a_skip_hash_index_keeps_its_zero_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        three_files(root);
        git(root, &["config", "index.skipHash", "true"]);
        git(root, &["update-index", "--really-refresh"]);
        git(root, &["add", "-u"]);
        let index = std::fs::read(root.join(".git/index")).unwrap();
        assert_eq!(
            &index[index.len() - 20..],
            &[0; 20],
            "git wrote no checksum"
        );
        let done = commit_some(root, &[("agents/a.yaml", "name: a3\n")], &[]);
        assert!(done.index_patched);
        let index = std::fs::read(root.join(".git/index")).unwrap();
        assert_eq!(&index[index.len() - 20..], &[0; 20]);
        assert_clean(root);
    }
}
