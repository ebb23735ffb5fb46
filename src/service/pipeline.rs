//! The pipeline from a tree to a plan, and from a store to a tree.
//!
//! `plan_tree` reads a tree through any [`TreeSource`], skips the units the
//! store holds unchanged, resolves and validates the rest, and diffs them
//! against the store's index. `export_tree` renders a tenant's drafts as a
//! canonical tree. Every command that plans (apply, promote, ZIP import)
//! ends in this one pipeline.

use std::collections::HashSet;

use crate::backend::store::{Store, StoreError};
use crate::domain::access::Role;
use crate::domain::diagnostic::{self, Diagnostic};
use crate::domain::model::{self, Kind, TenantModel};
use crate::domain::plan::{diff, DiffInput, DiffOptions, Plan};
use crate::domain::secrets::PLACEHOLDER;
use crate::domain::state::Index;
use crate::domain::tree::{self, MemoryTree, SourceError, TenantFile, TreeSource};
use crate::domain::validate::{self, render_names, render_names_in_place, NameTable};
use crate::service::access::Actor;

/// An error of the pipeline (not a problem in the input: those are diagnostics).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The tree could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The actor may not read the tenant.
    #[error(transparent)]
    Access(#[from] crate::domain::access::AccessError),
    /// A prune from an empty tree: never means "delete everything".
    #[error("the tree at {source_name} holds no resources; refusing to prune tenant `{tenant}` to nothing")]
    EmptyTree {
        /// The tenant.
        tenant: String,
        /// Where the tree was read from.
        source_name: String,
    },
    /// A resource could not be written as YAML.
    #[error(transparent)]
    Encode(#[from] crate::domain::yaml::EncodeError),
}

/// Counts of how a tree was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    /// Units in the tree.
    pub units: usize,
    /// Units decoded.
    pub parsed: usize,
    /// Units skipped as unchanged without decoding.
    pub unchanged: usize,
}

/// A plan, or the problems that prevent one.
#[derive(Debug)]
pub struct TreePlan {
    /// The plan, when the tree is valid.
    pub plan: Option<Plan>,
    /// Every problem found (errors block the plan).
    pub diagnostics: Vec<Diagnostic>,
    /// How the tree was read.
    pub stats: ReadStats,
    /// The tree's tenant file, when it has one.
    pub tenant_file: Option<TenantFile>,
    /// What was sent to a remote store's server, which made the plan (`None`: made here).
    pub sent: Option<Sent>,
}

/// What a plan made by a remote store's server was sent of the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// File bodies sent (a document's YAML and content file are two).
    pub files: usize,
    /// Resources (units) whose files were sent.
    pub units: usize,
}

fn line_lookup(
    source: &dyn TreeSource,
) -> impl Fn(&str, &str, Option<&str>) -> Option<u64> + Sync + '_ {
    move |path: &str, field: &str, value: Option<&str>| {
        let bytes = source.read(path).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        diagnostic::locate(&text, field, value)
    }
}

/// A tree read and resolved against an index.
struct Resolved<'a> {
    resolution: validate::Resolution<'a>,
    unchanged: HashSet<&'a str>,
    stats: ReadStats,
    tenant_file: Option<TenantFile>,
}

/// How much of each decoded resource reading keeps once its own fields are
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// All of it: a plan writes it.
    Whole,
    /// Identity and references, for the checks across resources (a
    /// validation, which writes nothing). A resource with encrypted values
    /// is kept whole, for the decryption check.
    References,
}

/// Check a decoded resource's own fields against the text it was read
/// from, then keep of it what `keep` says.
fn shaped(keep: Keep) -> impl Fn(&str, &[u8], &mut model::Resource) -> Vec<Diagnostic> + Sync {
    move |path: &str, bytes: &[u8], resource: &mut model::Resource| {
        let text = String::from_utf8_lossy(bytes);
        let lines =
            |_: &str, field: &str, value: Option<&str>| diagnostic::locate(&text, field, value);
        let found = validate::own_field_problems(path, resource, &lines);
        if keep == Keep::References && !resource.spec.mentions(crate::domain::secrets::ENC_PREFIX) {
            resource.keep_only_references();
        }
        found
    }
}

/// Read, resolve and check a tree against an index (empty for no store).
fn read_and_resolve<'a>(
    tenant: &str,
    source: &dyn TreeSource,
    index: &'a Index,
    changed: Option<&HashSet<String>>,
    partial: bool,
    keep: Keep,
) -> Result<Resolved<'a>, PipelineError> {
    // With the set of paths that changed since the store's commit, every
    // other unit is taken as unchanged without being read at all.
    let skip = |path: &str| -> Option<String> {
        let changed = changed?;
        if changed.contains(path) {
            return None;
        }
        index.by_path(path).map(|e| e.file_hash.clone())
    };
    let read = tree::read_tree_shaped(
        source,
        &|path, hash| index.is_unchanged(path, hash),
        &skip,
        &shaped(keep),
    )?;
    let stats = ReadStats {
        units: read.unit_count,
        parsed: read.loaded.len(),
        unchanged: read.unchanged.len(),
    };
    let mut unchanged: Vec<&'a crate::domain::state::IndexEntry> = read
        .unchanged
        .iter()
        .filter_map(|(p, _)| index.by_path(p))
        .collect();
    if let Some(changed) = changed.filter(|_| partial) {
        // A partial index holds, besides the changed units, only entries
        // the source does not list: every one of them is unchanged.
        unchanged.extend(
            index
                .entries()
                .iter()
                .filter(|e| !changed.contains(&e.path())),
        );
    }
    let unchanged_ids: HashSet<&'a str> = unchanged.iter().map(|e| e.id.as_str()).collect();
    let lookup = line_lookup(source);
    let failed: Vec<String> = read
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.file.clone())
        .collect();
    let mut resolution =
        validate::resolve(tenant, read.loaded, &unchanged, index, &failed, &lookup);
    let mut diags = read.diagnostics;
    if let Some(tf) = &read.tenant_file {
        if tf.name != tenant {
            diags.push(Diagnostic::error(
                tree::TENANT_FILE,
                "tenant-name",
                format!(
                    "tenant.toml names tenant `{}`, but this is tenant `{tenant}`",
                    tf.name
                ),
            ));
        }
    }
    diags.append(&mut resolution.diagnostics);
    diags.sort();
    diags.dedup();
    resolution.diagnostics = diags;
    Ok(Resolved {
        resolution,
        unchanged: unchanged_ids,
        stats,
        tenant_file: read.tenant_file,
    })
}

/// Validate a tree on its own; with a `store` that holds the tenant, its
/// encrypted values are also checked to decrypt with the tenant's key when
/// `actor` may read the tenant (a viewer), else a warning says they were
/// not and names the grant.
pub fn validate_tree(
    tenant: &str,
    source: &dyn TreeSource,
    store: Option<&dyn Store>,
    actor: &Actor,
) -> Result<(Vec<Diagnostic>, ReadStats), PipelineError> {
    let index = Index::default();
    let Resolved {
        resolution: mut res,
        stats,
        ..
    } = read_and_resolve(tenant, source, &index, None, false, Keep::References)?;
    if let Some(store) = store.filter(|s| s.tenant(tenant).is_ok()) {
        if may_check_decryption(store, actor, tenant, &mut res)? {
            check_decryption(store, tenant, source, &mut res)?;
        }
    }
    Ok((res.diagnostics, stats))
}

/// Whether `actor` may have a tree's encrypted values checked against the
/// tenant's key (a viewer may). When not, and the tree has an encrypted
/// value, a warning in the first file holding one says they were not
/// checked and names the grant, and the key is never read.
fn may_check_decryption(
    store: &dyn Store,
    actor: &Actor,
    tenant: &str,
    res: &mut validate::Resolution<'_>,
) -> Result<bool, PipelineError> {
    let encrypted = res
        .desired
        .iter()
        .find(|d| d.resource.spec.mentions(crate::domain::secrets::ENC_PREFIX));
    let Some(first) = encrypted else {
        return Ok(false);
    };
    let access = crate::service::access::access_of(store, actor)?;
    let checking = "checking encrypted values against the tenant's key";
    let Err(refusal) = access.require(actor.name(), tenant, Role::Viewer, checking) else {
        return Ok(true);
    };
    let warning = Diagnostic::warning(
        &first.path,
        "encryption-unchecked",
        format!(
            "encrypted values were not checked against tenant `{tenant}`'s key: {}",
            refusal.reason()
        ),
    );
    res.diagnostics.push(warning.with_hint(refusal.hint()));
    res.diagnostics.sort();
    Ok(false)
}

/// Every decoded `ENC[age,…]` value must decrypt with the tenant's key,
/// which only the store holds: a value encrypted to another key (another
/// store's `tenant.toml`) is an error naming its field.
fn check_decryption(
    store: &dyn Store,
    tenant: &str,
    source: &dyn TreeSource,
    res: &mut validate::Resolution<'_>,
) -> Result<(), PipelineError> {
    let lookup = line_lookup(source);
    let mut found = undecryptable(store, tenant, &res.desired, &lookup)?;
    if !found.is_empty() {
        res.diagnostics.append(&mut found);
        res.diagnostics.sort();
        res.diagnostics.dedup();
    }
    Ok(())
}

/// The `ENC[age,…]` values of `desired` that do not decrypt with tenant
/// `tenant`'s key, as errors naming file and field (never the value). The
/// key is read only when some value is encrypted.
pub fn undecryptable(
    store: &dyn Store,
    tenant: &str,
    desired: &[validate::Desired],
    lines: validate::LineLookup<'_>,
) -> Result<Vec<Diagnostic>, PipelineError> {
    use rayon::prelude::*;
    let encrypted =
        |d: &validate::Desired| d.resource.spec.mentions(crate::domain::secrets::ENC_PREFIX);
    if !desired.par_iter().any(encrypted) {
        return Ok(Vec::new());
    }
    let identity = match store.identity(tenant) {
        Ok(identity) => identity,
        // A remote store keeps the key from callers below admin: this side
        // cannot check, and does not refuse what it cannot check.
        Err(StoreError::Remote { status: 403, .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(validate::undecryptable_in(
        desired, tenant, &identity, lines,
    ))
}

/// Plan a tree against a store tenant.
pub fn plan_tree(
    store: &dyn Store,
    tenant: &str,
    source: &dyn TreeSource,
    options: DiffOptions,
) -> Result<TreePlan, PipelineError> {
    plan_tree_changed(store, tenant, source, options, None)
}

/// Plan a tree against a store tenant when the units that may differ from
/// the store are known (`changed`: YAML paths); every other unit the store
/// holds is taken as unchanged without being read. `None` reads them all.
pub fn plan_tree_changed(
    store: &dyn Store,
    tenant: &str,
    source: &dyn TreeSource,
    options: DiffOptions,
    changed: Option<&HashSet<String>>,
) -> Result<TreePlan, PipelineError> {
    let (revision, index) = store.index(tenant)?;
    let against = Against {
        revision,
        index: &index,
        changed,
        partial: false,
    };
    plan_against(store, tenant, source, options, against)
}

/// What a tree is planned against: the tenant revision, its index (the
/// whole of it, or with `partial` only the entries the `changed` units
/// touch), and the units that may differ from the store.
pub(crate) struct Against<'a> {
    pub revision: u64,
    pub index: &'a Index,
    pub changed: Option<&'a HashSet<String>>,
    pub partial: bool,
}

/// Plan a tree against an index the caller read.
pub(crate) fn plan_against(
    store: &dyn Store,
    tenant: &str,
    source: &dyn TreeSource,
    options: DiffOptions,
    against: Against<'_>,
) -> Result<TreePlan, PipelineError> {
    let Against {
        revision,
        index,
        changed,
        partial,
    } = against;
    let Resolved {
        resolution: mut res,
        unchanged,
        stats,
        tenant_file,
    } = read_and_resolve(tenant, source, index, changed, partial, Keep::Whole)?;
    check_decryption(store, tenant, source, &mut res)?;
    if diagnostic::has_errors(&res.diagnostics) {
        return Ok(TreePlan {
            plan: None,
            diagnostics: res.diagnostics,
            stats,
            tenant_file,
            sent: None,
        });
    }
    if options.prune && stats.units == 0 && !partial {
        return Err(PipelineError::EmptyTree {
            tenant: tenant.to_string(),
            source_name: source.describe(),
        });
    }
    let mut desired = res.desired;
    let mut diagnostics = res.diagnostics;
    keep_stored_secrets(store, tenant, index, &mut desired, &mut diagnostics)?;
    let plan = diff(
        DiffInput {
            tenant,
            base_revision: revision,
            index,
            desired,
            unchanged,
            names: &res.names,
        },
        options,
        &|ids| store.drafts(tenant, ids),
    )?;
    Ok(TreePlan {
        plan: Some(plan),
        diagnostics,
        stats,
        tenant_file,
        sent: None,
    })
}

/// A placeholder (what a scrubbed export writes for a credential) never
/// overwrites a stored secret: wherever a desired resource the store holds
/// has the placeholder, the stored value stays, as in a ZIP import
/// ([`crate::service::zip_import::restore`]); where the store has none, a
/// variable stands in and a warning says so.
fn keep_stored_secrets(
    store: &dyn Store,
    tenant: &str,
    index: &crate::domain::state::Index,
    desired: &mut [validate::Desired],
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<(), PipelineError> {
    use rayon::prelude::*;
    let holds_placeholder = |d: &validate::Desired| d.resource.spec.mentions(PLACEHOLDER);
    let ids: Vec<String> = desired
        .par_iter()
        .filter(|d| holds_placeholder(d))
        .filter_map(|d| d.resource.id().filter(|id| index.get(id).is_some()))
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let stored: std::collections::HashMap<String, serde_json::Value> = store
        .drafts(tenant, &ids)?
        .into_iter()
        .filter_map(|r| Some((r.id()?.to_string(), r.spec.to_json())))
        .collect();
    for d in desired.iter_mut() {
        let Some(tgt) = d.resource.id().and_then(|id| stored.get(id)) else {
            continue;
        };
        let mut spec = d.resource.spec.to_json();
        let mut notes = Vec::new();
        crate::service::zip_import::restore(
            &mut spec,
            Some(tgt),
            "spec",
            d.resource.name(),
            &mut notes,
        );
        if let Ok(s) = crate::domain::model::Spec::from_json(d.resource.kind(), spec) {
            d.resource.spec = s;
        }
        for n in notes {
            diagnostics.push(Diagnostic::warning(d.path.clone(), "placeholder-secret", n));
        }
    }
    Ok(())
}

/// A tenant's drafts as a model in tree form (references by name).
pub fn export_model(store: &dyn Store, tenant: &str) -> Result<TenantModel, PipelineError> {
    Ok(tree_form_model(store.all_drafts(tenant)?))
}

/// [`export_model`] of only the drafts of `ids`, which must hold everything
/// they reference (a reference closure): their references are rendered as
/// names from among themselves, and nothing else of the tenant is read.
pub fn export_model_of(
    store: &dyn Store,
    tenant: &str,
    ids: &[String],
) -> Result<TenantModel, PipelineError> {
    Ok(tree_form_model(store.drafts(tenant, ids)?))
}

/// Drafts in tree form (references as names, from among the drafts), as a model.
fn tree_form_model(mut drafts: Vec<model::Resource>) -> TenantModel {
    use rayon::prelude::*;
    let names = NameTable::of_resources(drafts.iter());
    drafts
        .par_iter_mut()
        .for_each(|r| render_names_in_place(r, &names));
    let mut model = TenantModel::default();
    for r in drafts {
        model.insert(r);
    }
    model
}

/// The `${vars.*}` names a model uses, sorted.
pub fn variables_of(model: &TenantModel) -> Vec<String> {
    let mut vars: Vec<String> = model
        .iter()
        .flat_map(|r| {
            let mut v = Vec::new();
            collect_vars(&r.spec.to_json(), &mut v);
            v
        })
        .collect();
    vars.sort();
    vars.dedup();
    vars
}

fn collect_vars(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.extend(crate::domain::secrets::template_vars(s)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_vars(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_vars(x, out)),
        _ => {}
    }
}

/// The names of what `resource` references, read by keyed lookups of
/// those IDs alone: enough to render it in tree form ([`render_names`]).
pub fn names_of_references(
    store: &dyn Store,
    tenant: &str,
    resource: &crate::domain::model::Resource,
) -> Result<NameTable, StoreError> {
    let keys = crate::backend::store::IndexKeys {
        ids: resource.refs().into_iter().map(|(_, id)| id).collect(),
        ..Default::default()
    };
    let (_, referenced) = store.index_entries(tenant, &keys)?;
    Ok(NameTable::of_index(&Index::new(referenced)))
}

/// How many drafts an export decodes at a time.
const EXPORT_CHUNK: usize = 2048;

/// A tenant's drafts as a canonical tree, with its `tenant.toml`.
pub fn export_tree(store: &dyn Store, tenant: &str) -> Result<MemoryTree, PipelineError> {
    Ok(export_tree_scrubbed(store, tenant)?.0)
}

/// [`export_tree`], and how many plain-text credentials it replaced with the
/// placeholder (`ENC[age,…]` values and `${vars.NAME}` stay; a plan of the
/// exported tree keeps the stored values, see [`keep_stored_secrets`]).
pub fn export_tree_scrubbed(
    store: &dyn Store,
    tenant: &str,
) -> Result<(MemoryTree, usize), PipelineError> {
    let mut tree = MemoryTree::default();
    let scrubbed = export_streamed(store, tenant, &mut |files| {
        tree.files.extend(files);
        true
    })?;
    Ok((tree, scrubbed))
}

/// [`export_tree_scrubbed`] handed to `on_files` a chunk at a time
/// ([`encode_drafts_chunked`]), `tenant.toml` last, so that the whole tree
/// is never held; `on_files` returns `false` to stop. How many credentials
/// were scrubbed.
pub fn export_streamed(
    store: &dyn Store,
    tenant: &str,
    on_files: &mut dyn FnMut(Vec<(String, Vec<u8>)>) -> bool,
) -> Result<usize, PipelineError> {
    let record = store.tenant(tenant)?;
    let mut going = true;
    let (scrubbed, variables) = encode_drafts_chunked(
        store,
        tenant,
        crate::domain::secrets::scrub_plain,
        true,
        &mut |files| {
            going = on_files(files);
            going
        },
    )?;
    if going {
        let tf = TenantFile {
            name: tenant.to_string(),
            environment: record.environment.clone(),
            recipient: Some(record.recipient.clone()),
            variables,
        };
        on_files(vec![(
            tree::TENANT_FILE.to_string(),
            tf.to_toml().into_bytes(),
        )]);
    }
    Ok(scrubbed)
}

/// Every draft of a tenant encoded as the files of a tree (no
/// `tenant.toml`), handed to `on_files` a chunk at a time, in the order the
/// store reads them, on the calling thread: the drafts are read, rendered
/// (names from the store's `id_names`), scrubbed by `scrub`
/// ([`crate::domain::secrets::scrub_plain`] for a folder or git,
/// [`crate::domain::secrets::scrub`] for an archive) and encoded
/// [`EXPORT_CHUNK`] at a time, so that no whole-tenant export holds the
/// decoded tenant. The store reads the next chunks while the other cores
/// encode the last ones, at most [`CHUNKS_IN_FLIGHT`] ahead. Returns how
/// many credentials were scrubbed and the `${vars.*}` names used (when
/// asked for), sorted. `on_files` returns `false` to stop the stream.
pub fn encode_drafts_chunked(
    store: &dyn Store,
    tenant: &str,
    scrub: fn(&mut serde_json::Value) -> usize,
    with_variables: bool,
    on_files: &mut dyn FnMut(Vec<(String, Vec<u8>)>) -> bool,
) -> Result<(usize, Vec<String>), PipelineError> {
    encode_drafts_by(store, tenant, EXPORT_CHUNK, scrub, with_variables, on_files)
}

/// [`encode_drafts_chunked`] with chunks of `chunk` drafts.
fn encode_drafts_by(
    store: &dyn Store,
    tenant: &str,
    chunk: usize,
    scrub: fn(&mut serde_json::Value) -> usize,
    with_variables: bool,
    on_files: &mut dyn FnMut(Vec<(String, Vec<u8>)>) -> bool,
) -> Result<(usize, Vec<String>), PipelineError> {
    let names = store.id_names(tenant)?;
    let (mut scrubbed, mut variables) = (0, Vec::new());
    let mut going = true;
    let mut failed = None;
    // Hand over the oldest chunk in flight once it is encoded.
    let mut hand_over = |chunk: Option<Result<EncodedChunk, _>>| match chunk {
        Some(Ok(chunk)) => {
            scrubbed += chunk.scrubbed;
            variables.extend(chunk.variables);
            going = going && on_files(chunk.files);
            going
        }
        Some(Err(e)) => {
            failed.get_or_insert(e);
            false
        }
        // The thread encoding the chunk ended without an answer.
        None => false,
    };
    let read = rayon::in_place_scope(|s| {
        let mut in_flight = std::collections::VecDeque::new();
        let read = store.drafts_chunked(tenant, chunk, &mut |part| {
            let (done, answer) = std::sync::mpsc::sync_channel(1);
            let names = &names;
            s.spawn(move |_| {
                let _ = done.send(encode_chunk(part, names, scrub, with_variables));
            });
            in_flight.push_back(answer);
            while in_flight.len() > CHUNKS_IN_FLIGHT {
                let oldest = in_flight.pop_front().and_then(|a| answer_of(&a));
                if !hand_over(oldest) {
                    return false;
                }
            }
            true
        });
        while let Some(answer) = in_flight.pop_front() {
            if read.is_err() || !hand_over(answer_of(&answer)) {
                break;
            }
        }
        read
    });
    read?;
    if let Some(e) = failed {
        return Err(PipelineError::Encode(e));
    }
    variables.sort();
    variables.dedup();
    Ok((scrubbed, variables))
}

/// The answer of a chunk's encoding, or `None` when its thread ended
/// without one. A thread of rayon's pool runs other jobs while it waits: it
/// may hold the very job it waits for (with one thread, it always does).
fn answer_of<T>(answer: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::TryRecvError;
    if rayon::current_thread_index().is_none() {
        return answer.recv().ok();
    }
    loop {
        match answer.try_recv() {
            Ok(a) => return Some(a),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// How many chunks an export encodes while the store reads ahead.
const CHUNKS_IN_FLIGHT: usize = 2;

/// One chunk of drafts encoded ([`encode_chunk`]).
struct EncodedChunk {
    files: Vec<(String, Vec<u8>)>,
    scrubbed: usize,
    variables: Vec<String>,
}

/// Render, scrub and encode one chunk of drafts, on every core.
fn encode_chunk(
    mut part: Vec<crate::domain::model::Resource>,
    names: &validate::IdNames,
    scrub: fn(&mut serde_json::Value) -> usize,
    with_variables: bool,
) -> Result<EncodedChunk, crate::domain::yaml::EncodeError> {
    use rayon::prelude::*;
    part.par_iter_mut()
        .for_each(|r| render_names_in_place(r, names));
    let mut model = TenantModel::default();
    part.into_iter().for_each(|r| model.insert(r));
    let scrubbed = scrub_model_with(&mut model, scrub);
    let variables = if with_variables {
        variables_of(&model)
    } else {
        Vec::new()
    };
    let tree = tree::encode_owned_model(model)?;
    // Copied into bytes of their exact size: what is kept outlives the
    // chunk, and would otherwise stay scattered among the freed pages of
    // the chunk's decoding (a fifth more peak memory at 100k).
    let files = tree
        .files
        .into_iter()
        .map(|(path, bytes)| (path.as_str().to_owned(), bytes.as_slice().to_vec()))
        .collect();
    Ok(EncodedChunk {
        files,
        scrubbed,
        variables,
    })
}

/// Replace the plain-text credentials of every spec with the placeholder
/// ([`crate::domain::secrets::scrub_plain`]); how many were replaced.
pub fn scrub_plain_model(model: &mut TenantModel) -> usize {
    scrub_model_with(model, crate::domain::secrets::scrub_plain)
}

/// Replace credentials in every spec with `scrub`; how many were replaced
/// (a spec the replacement would make invalid is left out of the count and kept whole).
pub fn scrub_model_with(
    model: &mut TenantModel,
    scrub: fn(&mut serde_json::Value) -> usize,
) -> usize {
    use rayon::prelude::*;
    model
        .resources
        .par_iter_mut()
        .map(|(_, r)| {
            let mut v = r.spec.to_json();
            let k = scrub(&mut v);
            if k == 0 {
                return 0;
            }
            match crate::domain::model::Spec::from_json(r.kind(), v) {
                Ok(s) => {
                    r.spec = s;
                    k
                }
                Err(_) => 0,
            }
        })
        .sum()
}

/// Counts of resources per kind in a model, in step order.
pub fn counts(model: &TenantModel) -> Vec<(Kind, usize)> {
    Kind::ALL
        .iter()
        .map(|k| (*k, model.iter().filter(|r| r.kind() == *k).count()))
        .collect()
}

/// The unit hash of a resource's canonical files (tree form).
pub fn canonical_unit_hash(
    tree_form: &crate::domain::model::Resource,
) -> Result<String, PipelineError> {
    let files = tree::encode_resource(tree_form)?;
    let yaml = &files[0].1;
    let content = files
        .get(1)
        .map(|(p, b)| (p.rsplit('/').next().unwrap_or(p.as_str()), b.as_slice()));
    Ok(tree::unit_hash(yaml, content))
}

/// Plan a set of resources in stored form (IDs set, references as IDs)
/// against a store tenant: the entry point of every model-to-model rewrite
/// (promotion, ZIP import, live sync).
///
/// References must point at resources of `resources` or of the tenant's
/// index; a reference that points at neither is reported as a diagnostic
/// and no plan is made. Resources of the tenant that `resources` does not
/// mention are listed as absent (or deleted, with prune).
pub fn plan_resources<R: Into<Box<model::Resource>>>(
    store: &dyn Store,
    tenant: &str,
    resources: Vec<R>,
    options: DiffOptions,
) -> Result<(Option<Plan>, Vec<Diagnostic>), PipelineError> {
    // Resources that come boxed keep their boxes, which move into the plan.
    let resources: Vec<Box<model::Resource>> = resources.into_iter().map(Into::into).collect();
    let (revision, index) = store.index(tenant)?;
    let mut names = NameTable::of_index(&index);
    for r in &resources {
        if let Some(id) = r.id() {
            names.insert(r.kind(), r.name(), id);
        }
    }
    let mut diags = Vec::new();
    let mut desired = Vec::with_capacity(resources.len());
    for r in resources {
        let path = crate::domain::model::resource_path(r.kind(), r.name());
        for (site, target) in r.refs() {
            let ok = names
                .name_of(&target)
                .is_some_and(|(k, _)| *k == site.target);
            if !ok {
                diags.push(
                    Diagnostic::error(
                        path.clone(),
                        "dangling-reference",
                        format!(
                            "{} `{target}` does not exist in tenant `{tenant}`",
                            site.target
                        ),
                    )
                    .in_field(site.path.clone()),
                );
            }
        }
        let hash = canonical_unit_hash(&render_names(&r, &names))?;
        desired.push(validate::Desired {
            path,
            hash,
            resource: r,
        });
    }
    diags.extend(undecryptable(store, tenant, &desired, &|_, _, _| None)?);
    if diagnostic::has_errors(&diags) {
        diags.sort();
        return Ok((None, diags));
    }
    let plan = diff(
        DiffInput {
            tenant,
            base_revision: revision,
            index: &index,
            desired,
            unchanged: HashSet::new(),
            names: &names,
        },
        options,
        &|ids| store.drafts(tenant, ids),
    )?;
    Ok((Some(plan), diags))
}

/// A tenant's resources (stored form) as a canonical tree with its
/// `tenant.toml`, as [`export_tree`] would write them (plain-text
/// credentials scrubbed).
pub fn tree_of_resources(
    record: &crate::backend::store::TenantRecord,
    resources: &[crate::domain::model::Resource],
) -> Result<MemoryTree, PipelineError> {
    let names = NameTable::of_resources(resources.iter());
    let mut model = TenantModel::default();
    for r in resources {
        model.insert(render_names(r, &names));
    }
    scrub_plain_model(&mut model);
    let mut tree = tree::encode_model(&model)?;
    let tf = TenantFile {
        name: record.name.clone(),
        environment: record.environment.clone(),
        recipient: Some(record.recipient.clone()),
        variables: variables_of(&model),
    };
    tree.files
        .insert(tree::TENANT_FILE.to_string(), tf.to_toml().into_bytes());
    Ok(tree)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::store::sqlite::SqliteStore;
    use crate::backend::store::ResourceStore;

    const T: &str = "acme-dev";

    #[test]
    fn a_validation_keeps_only_the_references_of_what_it_reads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/acme/tenants")
            .join(T);
        let source = tree::folder::FolderSource::new(root);
        let read = |keep| {
            tree::read_tree_shaped(&source, &|_, _| false, &|_| None, &shaped(keep)).unwrap()
        };
        let (whole, thin) = (read(Keep::Whole), read(Keep::References));
        assert_eq!(whole.diagnostics, thin.diagnostics);
        assert_eq!(whole.loaded.len(), thin.loaded.len());
        let mut trimmed = 0;
        for (w, t) in whole.loaded.iter().zip(&thin.loaded) {
            assert_eq!((&w.path, &w.hash), (&t.path, &t.hash));
            assert_eq!(w.resource.metadata, t.resource.metadata);
            assert_eq!(w.resource.refs(), t.resource.refs(), "{}", w.path);
            assert!(t.resource.content.is_none());
            trimmed += usize::from(w.resource != t.resource);
        }
        assert_eq!(trimmed, whole.loaded.len());
    }

    #[test]
    fn reading_keeps_encrypted_resources_whole_and_locates_own_field_problems() {
        let path = "connections/crm.yaml";
        let keys = crate::domain::secrets::generate_keypair();
        let sealed = crate::domain::secrets::encrypt(&keys.recipient, b"sk-live-0").unwrap();
        let text = format!(
            "apiVersion: ferry/v1\nkind: Connection\nmetadata:\n  name: crm\nspec:\n  \
             type: http\n  baseUrl: https://crm.example\n  credentials:\n    \
             apiKey: {sealed}\n"
        );
        let shape = shaped(Keep::References);
        let mut encrypted = tree::decode_file(path, text.as_bytes()).unwrap();
        let before = encrypted.clone();
        let found = shape(path, text.as_bytes(), &mut encrypted);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(encrypted, before);
        let text = text.replace(&sealed, "sk-live-0123456789abcdefghijklmnop");
        let mut plain = tree::decode_file(path, text.as_bytes()).unwrap();
        let found = shape(path, text.as_bytes(), &mut plain);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, Some(9));
        assert!(!found[0].to_string().contains("sk-live"));
    }

    /// A store with the acme-dev fixture applied.
    pub(crate) fn applied() -> (tempfile::TempDir, SqliteStore) {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&tmp.path().join("ferry.db")).unwrap();
        store
            .create_tenant(T, Some("dev"), &crate::domain::secrets::generate_keypair())
            .unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/acme/tenants")
            .join(T);
        let source = tree::folder::FolderSource::new(root);
        let plan = plan_tree(&store, T, &source, DiffOptions { prune: false })
            .unwrap()
            .plan
            .unwrap();
        crate::service::apply::apply(&mut store, &plan, Default::default()).unwrap();
        (tmp, store)
    }

    /// `store`'s tenant `tenant` (as exported) with `n` more tools,
    /// `extra-0000` onwards, applied.
    pub(crate) fn add_tools(store: &mut SqliteStore, tenant: &str, n: usize) {
        let mut tree = export_tree(store, tenant).unwrap();
        for i in 0..n {
            let text = format!(
                "apiVersion: ferry/v1\nkind: Tool\nmetadata:\n  name: extra-{i:04}\nspec:\n  type: http\n"
            );
            tree.files
                .insert(format!("tools/extra-{i:04}.yaml"), text.into_bytes());
        }
        let plan = plan_tree(store, tenant, &tree, DiffOptions { prune: false });
        let plan = plan.unwrap().plan.unwrap();
        crate::service::apply::apply(store, &plan, Default::default()).unwrap();
    }

    /// Every call of `on_files` of an export in chunks of `chunk` drafts.
    fn calls(store: &SqliteStore, chunk: usize) -> Vec<Vec<(String, Vec<u8>)>> {
        let mut calls = Vec::new();
        encode_drafts_by(
            store,
            T,
            chunk,
            crate::domain::secrets::scrub_plain,
            true,
            &mut |files| {
                calls.push(files);
                true
            },
        )
        .unwrap();
        calls
    }

    /// Chunks encoded while the store reads ahead come out in the store's
    /// order, the same every time, and hold the whole export between them.
    #[test]
    fn chunks_read_ahead_come_out_in_order_and_whole() {
        let (_tmp, store) = applied();
        let drafts = store.all_drafts(T).unwrap().len();
        assert!(drafts > 2 * (CHUNKS_IN_FLIGHT + 1), "{drafts} drafts");
        let first = calls(&store, 2);
        assert_eq!(first.len(), drafts.div_ceil(2), "one call per chunk");
        // Each chunk encoded in turn, as the store reads it.
        let names = store.id_names(T).unwrap();
        let mut one_by_one = Vec::new();
        store
            .drafts_chunked(T, 2, &mut |part| {
                let scrub = crate::domain::secrets::scrub_plain;
                one_by_one.push(encode_chunk(part, &names, scrub, true).unwrap().files);
                true
            })
            .unwrap();
        assert!(
            first == one_by_one,
            "the chunks come out in the store's order"
        );
        let mut whole = export_tree(&store, T).unwrap();
        whole.files.remove(tree::TENANT_FILE);
        let streamed: std::collections::BTreeMap<_, _> = first.into_iter().flatten().collect();
        assert_eq!(streamed, whole.files);
    }

    /// An export run on a pool of one thread finishes: waiting for a chunk
    /// does not hold up its encoding.
    #[test]
    fn an_export_inside_a_one_thread_pool_finishes() {
        let (tmp, store) = applied();
        let path = tmp.path().join("ferry.db");
        let (done, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let inside = pool.install(|| calls(&SqliteStore::open(&path).unwrap(), 2));
            let _ = done.send(inside);
        });
        let inside = answer
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the export inside a one-thread pool never finished");
        assert_eq!(inside, calls(&store, 2));
    }

    /// `on_files` answering `false` gets no more files, and the export stops
    /// without an error.
    #[test]
    fn a_stopped_export_hands_over_nothing_more() {
        let (_tmp, store) = applied();
        let mut seen = 0;
        encode_drafts_by(
            &store,
            T,
            2,
            crate::domain::secrets::scrub_plain,
            false,
            &mut |_| {
                seen += 1;
                false
            },
        )
        .unwrap();
        assert_eq!(seen, 1);
    }
}
