//! Trees: the files of one tenant, wherever they are, and their decoding.
//!
//! A tree is read through a [`TreeSource`] (a folder, a git revision, a ZIP,
//! or memory), so nothing here knows where bytes come from. A tree is made of
//! *units*: one resource's YAML file at `<step>/<name>.yaml`, plus, for a
//! document, its content file `<step>/<name>.<ext>` beside it. Each unit has
//! a blake3 hash over its bytes; the store remembers the hash of what it
//! applied, so a plan can decide SKIP before parsing anything.
//!
//! Decoding a unit gives a [`Resource`] in *tree form* (references by name)
//! or diagnostics that name the file and line. Encoding is the inverse and is
//! canonical: see [`encode_resource`].

pub mod folder;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::domain::diagnostic::Diagnostic;
use crate::domain::model::{self, is_valid_id, is_valid_name, Kind, Resource, Spec};
use crate::domain::yaml;

/// The file every tenant folder holds at its root.
pub const TENANT_FILE: &str = "tenant.toml";

/// An error reading from a tree source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be listed or read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// What could not be read.
        path: String,
        /// Why.
        reason: String,
    },
    /// The source does not exist.
    #[error("tree not found: {path}")]
    Missing {
        /// Where it was looked for.
        path: String,
    },
    /// The path is a link, a FIFO, a device or another non-regular file; it is never read.
    #[error(
        "`{path}` is a {what}; a tree holds only regular files, and ferry never follows links"
    )]
    NotRegular {
        /// The path.
        path: String,
        /// What it is, e.g. `symbolic link`.
        what: &'static str,
    },
    /// The file is larger than [`MAX_FILE_BYTES`]; it was not read whole.
    #[error("`{path}` is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: String,
        /// The limit.
        limit: u64,
    },
}

/// The largest file a tree reader reads; more is refused, never buffered.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// A path of a tree that is not a regular file: a link, a FIFO, a device,
/// a socket, a git submodule. Readers list it but never read or follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irregular {
    /// Relative path, `/`-separated.
    pub path: String,
    /// What it is, e.g. `symbolic link`.
    pub what: &'static str,
}

/// A tree's paths, split into regular files and everything else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Regular files, sorted.
    pub files: Vec<String>,
    /// Paths that are not regular files, sorted.
    pub irregular: Vec<Irregular>,
}

impl Listing {
    /// Every path, regular or not, sorted.
    pub fn into_paths(self) -> Vec<String> {
        let mut out = self.files;
        out.extend(self.irregular.into_iter().map(|i| i.path));
        out.sort();
        out
    }
}

/// The diagnostics for the non-regular paths of a listing, one per path.
pub fn irregular_diagnostics(listing: &Listing) -> Vec<Diagnostic> {
    listing
        .irregular
        .iter()
        .map(|i| {
            Diagnostic::error(
                i.path.clone(),
                "not-a-file",
                format!(
                    "this is a {}; a tree holds only regular files, and ferry never follows links (replace it with the file itself)",
                    i.what
                ),
            )
        })
        .collect()
}

/// Somewhere the files of one tenant tree can be read from.
pub trait TreeSource: Sync {
    /// A short description for messages, e.g. `tenants/acme-dev` or `HEAD:tenants/acme-dev`.
    fn describe(&self) -> String;
    /// Every file path in the tree, relative, with `/` separators, sorted
    /// (non-regular files included: reading one is an error).
    fn list(&self) -> Result<Vec<String>, SourceError>;
    /// The bytes of one file; a link or other non-regular file is
    /// [`SourceError::NotRegular`], and a file over [`MAX_FILE_BYTES`] is
    /// [`SourceError::TooLarge`].
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
    /// The paths split into regular files and the rest. Sources that can
    /// hold only regular files keep this default.
    fn listing(&self) -> Result<Listing, SourceError> {
        Ok(Listing {
            files: self.list()?,
            irregular: Vec::new(),
        })
    }
}

/// A tree held in memory: relative path to bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// Files by relative path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TreeSource for MemoryTree {
    fn describe(&self) -> String {
        "tree in memory".to_string()
    }
    fn list(&self) -> Result<Vec<String>, SourceError> {
        Ok(self.files.keys().cloned().collect())
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| SourceError::Missing {
                path: path.to_string(),
            })
    }
}

/// A tree in memory that hands each file over once: reading a file moves
/// its bytes out, so that a tree read with [`read_tree`] (which reads each
/// file once) is freed as it is decoded instead of being held beside the
/// decoded resources. A second read of a path finds it missing.
#[derive(Debug, Default)]
pub struct TakenTree {
    paths: Vec<String>,
    files: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
}

impl From<MemoryTree> for TakenTree {
    fn from(tree: MemoryTree) -> TakenTree {
        TakenTree {
            paths: tree.files.keys().cloned().collect(),
            files: std::sync::Mutex::new(tree.files),
        }
    }
}

impl TreeSource for TakenTree {
    fn describe(&self) -> String {
        "tree in memory".to_string()
    }
    fn list(&self) -> Result<Vec<String>, SourceError> {
        Ok(self.paths.clone())
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let taken = match self.files.lock() {
            Ok(mut files) => files.remove(path),
            Err(poisoned) => poisoned.into_inner().remove(path),
        };
        taken.ok_or_else(|| SourceError::Missing {
            path: path.to_string(),
        })
    }
}

/// The settings file of a tenant folder, `tenant.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// The tenant's name, e.g. `acme-dev`.
    pub name: String,
    /// The environment, e.g. `dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The tenant's age public key; secrets are encrypted to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The `${vars.*}` names the tenant's configuration uses.
    #[serde(default)]
    pub variables: Vec<String>,
}

impl TenantFile {
    /// Render as TOML, deterministically.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("name = {}\n", toml_str(&self.name)));
        if let Some(e) = &self.environment {
            s.push_str(&format!("environment = {}\n", toml_str(e)));
        }
        if let Some(r) = &self.recipient {
            s.push_str(&format!("recipient = {}\n", toml_str(r)));
        }
        let vars: Vec<String> = self.variables.iter().map(|v| toml_str(v)).collect();
        s.push_str(&format!("variables = [{}]\n", vars.join(", ")));
        s
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One unit of a tree: a resource file and its optional content file, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Path of the YAML file, e.g. `documents/refund-policy.yaml`.
    pub path: String,
    /// Path of the content file beside it, if any.
    pub content_path: Option<String>,
    /// blake3 over the YAML bytes and the content file, if any.
    pub hash: String,
}

/// A decoded unit: the resource in tree form, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Path of the YAML file.
    pub path: String,
    /// The unit hash.
    pub hash: String,
    /// The resource, references by name, content attached; boxed, so that
    /// it moves from here to a plan's action without being copied, and a
    /// list of 100,000 of these is small beside the resources themselves.
    pub resource: Box<Resource>,
}

/// What reading a tree gave: decoded units, units skipped as unchanged, and problems.
#[derive(Debug, Default)]
pub struct TreeRead {
    /// Units that were decoded.
    pub loaded: Vec<Loaded>,
    /// Units whose hash the caller already knew: `(path, hash)`.
    pub unchanged: Vec<(String, String)>,
    /// Problems, each naming its file.
    pub diagnostics: Vec<Diagnostic>,
    /// The tenant file, when the tree has one and it parses.
    pub tenant_file: Option<TenantFile>,
    /// Number of YAML units found.
    pub unit_count: usize,
}

/// Hash a unit from its YAML bytes and optional content bytes.
pub fn unit_hash(yaml: &[u8], content: Option<(&str, &[u8])>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(yaml);
    if let Some((name, bytes)) = content {
        h.update(b"\0ferry-content\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(bytes);
    }
    h.finalize().to_hex().to_string()
}

/// Group the paths of a tree into units, and report files that belong to none.
pub fn units_of(paths: &[String]) -> (Vec<(String, Option<String>)>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut yaml_files: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut others: Vec<&String> = Vec::new();
    for p in paths {
        let mut parts = p.splitn(2, '/');
        let first = parts.next().unwrap_or("");
        let rest = parts.next();
        match rest {
            None => {
                // Files at the root (tenant.toml, manifest.json, README.md) are not resources.
            }
            Some(rest) => {
                if first.starts_with('.') {
                    continue;
                }
                if Kind::from_step(first).is_none() {
                    diags.push(Diagnostic::error(
                        p.clone(),
                        "unknown-folder",
                        format!(
                            "`{first}/` is not a step folder; expected one of {}",
                            Kind::ALL.map(|k| k.step()).join(", ")
                        ),
                    ));
                    continue;
                }
                if rest.contains('/') {
                    diags.push(Diagnostic::error(
                        p.clone(),
                        "nested-file",
                        "resource files sit directly in their step folder",
                    ));
                    continue;
                }
                if rest.ends_with(".yaml") {
                    yaml_files.insert(p.clone(), None);
                } else if rest.ends_with(".yml") {
                    diags.push(Diagnostic::error(
                        p.clone(),
                        "file-extension",
                        "resource files end in `.yaml`",
                    ));
                } else if rest == ".gitkeep" {
                } else {
                    others.push(p);
                }
            }
        }
    }
    for p in others {
        let stem = match p.rfind('.') {
            Some(i) if i > p.rfind('/').unwrap_or(0) + 1 => &p[..i],
            _ => p.as_str(),
        };
        let yaml_path = format!("{stem}.yaml");
        match yaml_files.get_mut(&yaml_path) {
            Some(slot @ None) if p.starts_with("documents/") => *slot = Some(p.clone()),
            _ => diags.push(Diagnostic::error(
                p.clone(),
                "unexpected-file",
                "no resource claims this file; a document's content file is `documents/<name>.<ext>` beside `documents/<name>.yaml`",
            )),
        }
    }
    (yaml_files.into_iter().collect(), diags)
}

fn line_of_byte(bytes: &[u8], pos: usize) -> u64 {
    bytes[..pos.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// Decode one resource file into tree form; checks that need only this file.
///
/// Any problem is an `Err`; see [`decode_unit`] for the form that keeps a
/// resource whose problems do not stop it from being read (so that, for
/// example, a misnamed file still takes part in the duplicate-name check).
pub fn decode_file(path: &str, bytes: &[u8]) -> Result<Resource, Vec<Diagnostic>> {
    match decode_unit(path, bytes) {
        (Some(r), d) if d.is_empty() => Ok(r),
        (_, d) => Err(d),
    }
}

/// The key on a 1-based line of YAML text, as a field hint for a message.
fn key_on_line(text: &str, line: Option<u64>) -> Option<String> {
    let l = text.lines().nth(line?.checked_sub(1)? as usize)?;
    let t = l.trim_start().trim_start_matches("- ");
    let key = t.split(':').next()?.trim();
    (!key.is_empty()
        && t.contains(':')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then(|| key.to_string())
}

/// The 1-based line of the first line indented with a tab, for a file YAML refused.
fn tab_indent_line(text: &str) -> Option<u64> {
    text.lines()
        .position(|l| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
                && !l.trim().is_empty()
        })
        .map(|i| i as u64 + 1)
}

/// `did you mean ...?` for "unknown field `x`, expected one of a, b, c"
/// (the expected names bare or in backticks).
fn unknown_field_hint(message: &str) -> Option<String> {
    let unknown = message.split('`').nth(1)?;
    let (_, expected) = message.split_once("expected ")?;
    let expected = expected.trim_start_matches("one of ");
    // A resource's own fields at the top of the file belong under `metadata:`.
    let top_level = expected.contains("metadata") && expected.contains("spec");
    if top_level && ["name", "id", "syncable"].contains(&unknown) {
        return Some(format!(
            "`{unknown}` goes under `metadata:` (`metadata.{unknown}`)"
        ));
    }
    let names = expected
        .split([',', ' '])
        .map(|w| w.trim().trim_matches('`'))
        .filter(|w| !w.is_empty() && *w != "or");
    crate::domain::suggest::did_you_mean(unknown, names)
}

/// Decode one resource file: the resource when it could be read, and every problem found.
pub fn decode_unit(path: &str, bytes: &[u8]) -> (Option<Resource>, Vec<Diagnostic>) {
    match decode_inner(path, bytes) {
        Ok((r, d)) => (Some(r), d),
        Err(d) => (None, d),
    }
}

fn decode_inner(path: &str, bytes: &[u8]) -> Result<(Resource, Vec<Diagnostic>), Vec<Diagnostic>> {
    let text = utf8_text(path, bytes).map_err(|d| vec![d])?;
    let doc = yaml::decode_resource(text).map_err(|e| vec![yaml_problem(path, text, e)])?;
    let kind = doc.spec.kind();
    let diags: Vec<Diagnostic> = [
        check_api_version(path, text, &doc.api_version),
        check_folder(path, text, kind),
        check_name_and_path(path, text, kind, &doc.metadata.name),
        doc.metadata
            .id
            .as_deref()
            .and_then(|id| check_id(path, text, id)),
        check_content_file(path, text, &doc.metadata.name, &doc.spec),
    ]
    .into_iter()
    .flatten()
    .collect();
    let fatal = diags
        .iter()
        .any(|d| matches!(d.code, "bad-name" | "wrong-folder"));
    if fatal {
        return Err(diags);
    }
    Ok((
        Resource {
            metadata: doc.metadata,
            spec: doc.spec,
            content: None,
        },
        diags,
    ))
}

/// The file as text, or the `not-utf8` problem at the first bad byte.
// A Diagnostic is the error here by design (broken input is data), read once per file.
#[allow(clippy::result_large_err)]
fn utf8_text<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        Diagnostic::error(
            path,
            "not-utf8",
            format!(
                "file is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
        .at_line(Some(line_of_byte(bytes, e.valid_up_to())))
    })
}

/// The diagnostic code of a YAML decoding error, from its message.
fn yaml_error_code(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "unknown-field"
    } else if message.contains("unknown kind") {
        "unknown-kind"
    } else if message.contains("duplicate mapping key") {
        "duplicate-key"
    } else if message.contains("budget") || message.contains("alias") {
        "yaml-budget"
    } else if message.starts_with("invalid") || message.starts_with("expected") {
        "wrong-type"
    } else {
        "yaml"
    }
}

/// A YAML decoding error as a diagnostic; a wrong type names the field on its line.
fn yaml_problem(path: &str, text: &str, e: yaml::YamlError) -> Diagnostic {
    if let Some(tab) = tab_indent_line(text) {
        return Diagnostic::error(
            path,
            "yaml-tab",
            "a tab in the indentation; YAML does not allow tabs there",
        )
        .at_line(Some(tab))
        .with_hint(Some("YAML indents with spaces".into()));
    }
    let code = yaml_error_code(&e.message);
    let hint = (code == "unknown-field")
        .then(|| unknown_field_hint(&e.message))
        .flatten();
    let d = Diagnostic::error(path, code, e.message)
        .at_line(e.line)
        .with_hint(hint);
    if code != "wrong-type" {
        return d;
    }
    match key_on_line(text, e.line) {
        Some(k) => d.in_field(k),
        None => d,
    }
}

/// `apiVersion` must be the one this ferry reads.
fn check_api_version(path: &str, text: &str, api_version: &str) -> Option<Diagnostic> {
    (api_version != model::API_VERSION).then(|| {
        Diagnostic::error(
            path,
            "api-version",
            format!(
                "apiVersion `{api_version}` is not supported; expected `{}`",
                model::API_VERSION
            ),
        )
        .in_field("apiVersion")
        .at_line(crate::domain::diagnostic::locate(text, "apiVersion", None))
    })
}

/// A resource lives in its kind's folder.
fn check_folder(path: &str, text: &str, kind: Kind) -> Option<Diagnostic> {
    let (folder, _) = path.split_once('/').unwrap_or(("", path));
    (folder != kind.step()).then(|| {
        Diagnostic::error(
            path,
            "wrong-folder",
            format!("a {kind} belongs in `{}/`, not `{folder}/`", kind.step()),
        )
        .in_field("kind")
        .at_line(crate::domain::diagnostic::locate(text, "kind", None))
    })
}

/// The name is valid, and the file is named after it.
fn check_name_and_path(path: &str, text: &str, kind: Kind, name: &str) -> Option<Diagnostic> {
    let (_, file) = path.split_once('/').unwrap_or(("", path));
    let name_line = crate::domain::diagnostic::locate(text, "metadata.name", None);
    let problem = if !is_valid_name(name) {
        Diagnostic::error(
            path,
            "bad-name",
            format!("name `{name}` must be lower-case letters, digits, `-`, `_` or `.`"),
        )
    } else if file.strip_suffix(".yaml") != Some(name) {
        Diagnostic::error(
            path,
            "path-mismatch",
            format!(
                "the file of `{name}` must be `{}`",
                model::resource_path(kind, name)
            ),
        )
    } else {
        return None;
    };
    Some(problem.in_field("metadata.name").at_line(name_line))
}

/// An ID, when given, has the shape of one.
fn check_id(path: &str, text: &str, id: &str) -> Option<Diagnostic> {
    (!is_valid_id(id)).then(|| {
        Diagnostic::error(
            path,
            "bad-id",
            format!("id `{id}` must be 1 to 64 ASCII letters, digits, `_` or `-`"),
        )
        .in_field("metadata.id")
        .at_line(crate::domain::diagnostic::locate(text, "metadata.id", None))
    })
}

/// A document's `contentFile` is `<name>.<ext>`, beside its YAML file.
fn check_content_file(path: &str, text: &str, name: &str, spec: &Spec) -> Option<Diagnostic> {
    let Spec::Document(d) = spec else {
        return None;
    };
    let cf = d.content_file.as_deref()?;
    let beside = cf
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1 && !rest.contains('/'))
        && !cf.ends_with(".yaml");
    (!beside).then(|| {
        Diagnostic::error(
            path,
            "content-file",
            format!("contentFile must be `{name}.<ext>`, beside this file"),
        )
        .in_field("spec.contentFile")
        .at_line(crate::domain::diagnostic::locate(text, "contentFile", None))
    })
}

/// Attach a document's content bytes, checking and filling in its hash and size.
fn attach_content(
    path: &str,
    resource: &mut Resource,
    content: Option<(String, Vec<u8>)>,
    diags: &mut Vec<Diagnostic>,
) {
    let Spec::Document(d) = &mut resource.spec else {
        if let Some((cp, _)) = content {
            diags.push(Diagnostic::error(
                cp,
                "unexpected-file",
                "only documents carry a content file",
            ));
        }
        return;
    };
    match (&d.content_file, content) {
        (None, None) => {}
        (Some(cf), None) => diags.push(
            Diagnostic::error(
                path,
                "missing-content-file",
                format!("contentFile `{cf}` is not in the tree"),
            )
            .in_field("spec.contentFile"),
        ),
        (None, Some((cp, _))) => diags.push(Diagnostic::error(
            cp,
            "unexpected-file",
            format!("`{path}` does not name this file as its contentFile"),
        )),
        (Some(cf), Some((cp, bytes))) => {
            let expected_name = cp.rsplit('/').next().unwrap_or(&cp);
            if cf != expected_name {
                diags.push(
                    Diagnostic::error(
                        path,
                        "content-file",
                        format!("contentFile `{cf}` does not match `{expected_name}` beside it"),
                    )
                    .in_field("spec.contentFile"),
                );
                return;
            }
            let hash = crate::domain::ids::content_hash(&bytes);
            if let Some(stated) = &d.content_hash {
                if *stated != hash {
                    diags.push(
                        Diagnostic::error(
                            path,
                            "content-hash",
                            format!("contentHash does not match `{cf}` (its hash is {hash})"),
                        )
                        .in_field("spec.contentHash"),
                    );
                    return;
                }
            }
            if let Some(size) = d.size {
                if size != bytes.len() as u64 {
                    diags.push(
                        Diagnostic::error(
                            path,
                            "content-size",
                            format!("size {size} does not match `{cf}` ({} bytes)", bytes.len()),
                        )
                        .in_field("spec.size"),
                    );
                    return;
                }
            }
            d.content_hash = Some(hash);
            d.size = Some(bytes.len() as u64);
            resource.content = Some(bytes);
        }
    }
}

/// The tenant file from the bytes of `tenant.toml`, or the problem with it.
pub fn tenant_file_of(bytes: &[u8]) -> Result<TenantFile, Box<Diagnostic>> {
    std::str::from_utf8(bytes)
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str::<TenantFile>(t).map_err(|e| e.to_string()))
        .map_err(|e| {
            Box::new(Diagnostic::error(
                TENANT_FILE,
                "tenant-file",
                e.trim().to_string(),
            ))
        })
}

/// Read a tree: hash every unit, skip the ones `known` says are unchanged, decode the rest.
///
/// Hashing and decoding run on all cores. `known(path, hash)` answers
/// whether the store already holds exactly this unit.
pub fn read_tree(
    source: &dyn TreeSource,
    known: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Result<TreeRead, SourceError> {
    read_tree_skipping(source, known, &|_| None)
}

/// Read a tree like [`read_tree`], but never read the units for which
/// `skip(path)` gives a unit hash: they are known unchanged (e.g. a git
/// tree diff said so), so the cost follows the change, not the tree.
pub fn read_tree_skipping(
    source: &dyn TreeSource,
    known: &(dyn Fn(&str, &str) -> bool + Sync),
    skip: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<TreeRead, SourceError> {
    read_tree_shaped(source, known, skip, &|_, _, _| Vec::new())
}

/// What a reader does with each decoded resource before keeping it, on the
/// thread that decoded it: `shape(path, yaml_bytes, resource)` may check
/// it (its diagnostics are kept) and trim it.
pub type Shape<'a> = &'a (dyn Fn(&str, &[u8], &mut Resource) -> Vec<Diagnostic> + Sync);

/// [`read_tree_skipping`], with each decoded resource passed through
/// `shape` as soon as it is decoded: a caller that needs only part of each
/// resource never holds the whole of every one at once.
pub fn read_tree_shaped(
    source: &dyn TreeSource,
    known: &(dyn Fn(&str, &str) -> bool + Sync),
    skip: &(dyn Fn(&str) -> Option<String> + Sync),
    shape: Shape<'_>,
) -> Result<TreeRead, SourceError> {
    let listing = source.listing()?;
    let mut out = TreeRead::default();
    out.diagnostics.extend(irregular_diagnostics(&listing));
    let paths = listing.files;
    if paths.iter().any(|p| p == TENANT_FILE) {
        match tenant_file_of(&source.read(TENANT_FILE)?) {
            Ok(tf) => out.tenant_file = Some(tf),
            Err(d) => out.diagnostics.push(*d),
        }
    }
    let (units, diags) = units_of(&paths);
    out.diagnostics.extend(diags);
    out.unit_count = units.len();
    enum One {
        Unchanged(String, String),
        Loaded(Loaded, Vec<Diagnostic>),
        Failed(Vec<Diagnostic>),
    }
    let results: Vec<One> = units
        .par_iter()
        .map(|(path, content_path)| {
            if let Some(hash) = skip(path) {
                return One::Unchanged(path.clone(), hash);
            }
            let read = |p: &str| source.read(p);
            let yaml_bytes = match read(path) {
                Ok(b) => b,
                Err(e) => {
                    return One::Failed(vec![Diagnostic::error(
                        path.clone(),
                        "read",
                        e.to_string(),
                    )])
                }
            };
            let content = match content_path {
                Some(cp) => match read(cp) {
                    Ok(b) => Some((cp.clone(), b)),
                    Err(e) => {
                        return One::Failed(vec![Diagnostic::error(
                            cp.clone(),
                            "read",
                            e.to_string(),
                        )])
                    }
                },
                None => None,
            };
            let hash = unit_hash(
                &yaml_bytes,
                content
                    .as_ref()
                    .map(|(p, b)| (p.rsplit('/').next().unwrap_or(p), b.as_slice())),
            );
            if known(path, &hash) {
                return One::Unchanged(path.clone(), hash);
            }
            match decode_unit(path, &yaml_bytes) {
                (Some(mut resource), mut diags) => {
                    attach_content(path, &mut resource, content, &mut diags);
                    if diags.iter().any(|d| d.line.is_none()) {
                        let text = String::from_utf8_lossy(&yaml_bytes);
                        for d in diags
                            .iter_mut()
                            .filter(|d| d.line.is_none() && d.file == *path)
                        {
                            if let Some(f) = &d.field {
                                d.line = crate::domain::diagnostic::locate(&text, f, None);
                            }
                        }
                    }
                    diags.extend(shape(path, &yaml_bytes, &mut resource));
                    One::Loaded(
                        Loaded {
                            path: path.clone(),
                            hash,
                            resource: Box::new(resource),
                        },
                        diags,
                    )
                }
                (None, d) => One::Failed(d),
            }
        })
        .collect();
    let loaded = results
        .iter()
        .filter(|r| matches!(r, One::Loaded(..)))
        .count();
    out.loaded.reserve_exact(loaded);
    for r in results {
        match r {
            One::Unchanged(p, h) => out.unchanged.push((p, h)),
            One::Loaded(l, d) => {
                out.diagnostics.extend(d);
                out.loaded.push(l);
            }
            One::Failed(d) => out.diagnostics.extend(d),
        }
    }
    out.diagnostics.sort();
    Ok(out)
}

/// Encode a resource (tree form) as the files of its unit: the YAML file and the content file.
pub fn encode_resource(resource: &Resource) -> Result<Vec<(String, Vec<u8>)>, yaml::EncodeError> {
    let kind = resource.kind();
    let mut files = vec![(
        model::resource_path(kind, resource.name()),
        yaml::encode_resource(&resource.metadata, &resource.spec)?.into_bytes(),
    )];
    if let (Spec::Document(d), Some(content)) = (&resource.spec, &resource.content) {
        if let Some(cf) = &d.content_file {
            files.push((format!("{}/{cf}", kind.step()), content.clone()));
        }
    }
    Ok(files)
}

/// Encode a whole tenant model (tree form) as a tree in memory.
pub fn encode_model(model: &model::TenantModel) -> Result<MemoryTree, yaml::EncodeError> {
    let encoded: Result<Vec<_>, _> = model
        .resources
        .par_iter()
        .map(|(_, r)| encode_resource(r))
        .collect();
    Ok(tree_of(encoded?))
}

/// [`encode_model`] of a model the caller gives up: each resource is
/// dropped as soon as its files are made, so the model and the tree are
/// never both whole in memory.
pub fn encode_owned_model(model: model::TenantModel) -> Result<MemoryTree, yaml::EncodeError> {
    let encoded: Result<Vec<_>, _> = model
        .resources
        .into_par_iter()
        .map(|(_, r)| encode_resource(&r))
        .collect();
    Ok(tree_of(encoded?))
}

/// The tree of every resource's files.
fn tree_of(encoded: Vec<Vec<(String, Vec<u8>)>>) -> MemoryTree {
    let mut tree = MemoryTree::default();
    for files in encoded {
        for (p, b) in files {
            tree.files.insert(p, b);
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_tree_hands_each_file_over_once_and_reads_like_the_tree() {
        let mut tree = MemoryTree::default();
        tree.files
            .insert("tools/crm-lookup.yaml".into(), TOOL.as_bytes().to_vec());
        let whole = read_tree(&tree, &|_, _| false).unwrap();
        let taken = TakenTree::from(tree.clone());
        assert_eq!(taken.list().unwrap(), tree.list().unwrap());
        let read = read_tree(&taken, &|_, _| false).unwrap();
        assert_eq!(read.loaded.len(), 1);
        assert_eq!(read.loaded[0].resource, whole.loaded[0].resource);
        assert_eq!(read.diagnostics, whole.diagnostics);
        assert!(matches!(
            taken.read("tools/crm-lookup.yaml"),
            Err(SourceError::Missing { .. })
        ));
    }

    const TOOL: &str =
        "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: crm-lookup\nspec:\n  type: http\n";

    #[test]
    fn utf8_text_names_the_line_of_the_bad_byte() {
        assert_eq!(utf8_text("tools/a.yaml", b"ok"), Ok("ok"));
        let d = utf8_text("tools/a.yaml", b"a: 1\nb: \xff\n").unwrap_err();
        assert_eq!((d.code, d.line), ("not-utf8", Some(2)));
    }

    /// A resource's name written at the top of its file points under
    /// `metadata:`; a typo of a top-level field still gets "did you mean".
    #[test]
    fn a_name_at_the_top_of_a_file_points_under_metadata() {
        let (_, d) = decode_unit(
            "agents/x.yaml",
            b"apiVersion: ferry/v1\nkind: Agent\nname: x\nspec: {}\n",
        );
        assert_eq!((d[0].code, d[0].line), ("unknown-field", Some(3)));
        let hint = d[0].hint.as_deref();
        assert_eq!(
            hint,
            Some("`name` goes under `metadata:` (`metadata.name`)")
        );
        let (_, d) = decode_unit(
            "agents/x.yaml",
            b"apiVersion: ferry/v1\nkind: Agent\nspek: {}\n",
        );
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `spec`?"));
    }

    #[test]
    fn yaml_errors_get_a_code_from_their_message() {
        assert_eq!(yaml_error_code("unknown field `x`"), "unknown-field");
        assert_eq!(yaml_error_code("unknown kind `Robot`"), "unknown-kind");
        assert_eq!(yaml_error_code("duplicate mapping key"), "duplicate-key");
        assert_eq!(yaml_error_code("alias budget exceeded"), "yaml-budget");
        assert_eq!(yaml_error_code("invalid type: string"), "wrong-type");
        assert_eq!(yaml_error_code("mapping values not allowed"), "yaml");
        let e = yaml::YamlError {
            message: "invalid type: string, expected a boolean".into(),
            line: Some(4),
            column: None,
        };
        let text = "a: 1\nb: 2\nc: 3\n  syncable: yes\n";
        let d = yaml_problem("tools/a.yaml", text, e);
        assert_eq!(
            (d.code, d.line, d.field.as_deref()),
            ("wrong-type", Some(4), Some("syncable"))
        );
    }

    #[test]
    fn envelope_checks_each_name_their_field() {
        let bad = check_api_version("tools/a.yaml", TOOL, "ferry/v0").unwrap();
        assert_eq!(bad.field.as_deref(), Some("apiVersion"));
        assert!(check_api_version("tools/a.yaml", TOOL, model::API_VERSION).is_none());
        let folder = check_folder("agents/crm-lookup.yaml", TOOL, Kind::Tool).unwrap();
        assert_eq!((folder.code, folder.line), ("wrong-folder", Some(2)));
        assert!(check_folder("tools/crm-lookup.yaml", TOOL, Kind::Tool).is_none());
    }

    #[test]
    fn a_name_must_be_valid_and_match_its_file() {
        let check = |path, name| check_name_and_path(path, TOOL, Kind::Tool, name).map(|d| d.code);
        assert_eq!(check("tools/crm-lookup.yaml", "crm-lookup"), None);
        assert_eq!(
            check("tools/other.yaml", "crm-lookup"),
            Some("path-mismatch")
        );
        assert_eq!(check("tools/Bad Name.yaml", "Bad Name"), Some("bad-name"));
        assert_eq!(
            check_id("tools/a.yaml", TOOL, "tol 1").map(|d| d.code),
            Some("bad-id")
        );
        assert!(check_id("tools/a.yaml", TOOL, "tol_1").is_none());
    }

    #[test]
    fn a_content_file_lies_beside_its_document() {
        let spec = |cf: &str| {
            Spec::from_json(
                Kind::Document,
                serde_json::json!({"title": "T", "mediaType": "text/plain", "contentFile": cf}),
            )
            .unwrap()
        };
        let check = |cf| check_content_file("documents/faq.yaml", "", "faq", &spec(cf));
        assert!(check("faq.md").is_none());
        for bad in ["other.md", "faq.", "faq.yaml", "faq./x", "faq"] {
            assert_eq!(check(bad).map(|d| d.code), Some("content-file"), "{bad}");
        }
    }

    #[test]
    fn decoding_stops_at_a_fatal_problem_and_keeps_the_others() {
        let (r, d) = decode_unit("tools/crm-lookup.yaml", TOOL.as_bytes());
        assert!(r.is_some() && d.is_empty());
        let v0 = TOOL.replace("ferry/v1", "ferry/v0");
        let (r, d) = decode_unit("tools/crm-lookup.yaml", v0.as_bytes());
        assert!(r.is_some());
        assert_eq!(d[0].code, "api-version");
        let (r, d) = decode_unit("agents/crm-lookup.yaml", v0.as_bytes());
        assert!(r.is_none());
        let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["api-version", "wrong-folder"]);
    }
}
