//! Tenant promotion: a model-to-model rewrite from one tenant to another.
//!
//! This module owns the rules of `ferry promote`. It selects the resources of
//! the source tenant marked `syncable` plus everything they reference,
//! transitively (built-in tools are never selected, and references to them
//! are kept as they are). Each selected resource gets its target ID from
//! [`ids::promoted_id`] over its *origin* — the tenant and ID recorded in
//! `metadata.syncedFrom`, or the source tenant and its own ID — so
//! re-promoting updates instead of duplicating, and dev→staging→prod gives
//! the same prod IDs as dev→prod. Every reference is rewritten with the same
//! mapping, `metadata.syncedFrom` records the origin, creator metadata is
//! kept, and `ENC[age,…]` values are decrypted with the source tenant's key
//! and encrypted to the target's (reusing the target's ciphertext when the
//! value did not change, so a re-promotion is all SKIP). Published versions
//! travel with their numbers. The mapped set then goes through the one
//! pipeline every rewrite uses: [`pipeline::plan_resources`] (never
//! pruning: resources made directly in the target are never touched) and
//! [`apply::apply_with_versions`].
//!
//! Nothing here prints or reads the environment; no secret value ever
//! reaches an error, a report or a tree.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;
use serde_json::Value;

use crate::backend::store::{Store, StoreError, VersionRecord};
use crate::domain::chain::{AgainstChain, Chain, ChainMove};
use crate::domain::diagnostic::{self, Diagnostic};
use crate::domain::ids;
use crate::domain::model::{is_builtin, Kind, Resource, Spec, SyncedFrom, TenantModel};
use crate::domain::plan::{ActionKind, DiffOptions, Plan};
use crate::domain::secrets;
use crate::domain::state::Index;
use crate::domain::tree::{self, MemoryTree, TenantFile};
use crate::domain::validate::{render_names, NameTable};
use crate::service::apply::{self, ApplyError, ApplyOptions, ApplyReport};
use crate::service::pipeline::{self, PipelineError};

/// Why a promotion was refused or failed. The target is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Source and target are the same tenant of the same store.
    #[error("cannot promote tenant `{tenant}` into itself")]
    SameTenant {
        /// The tenant.
        tenant: String,
    },
    /// The promotion goes against the repo's promotion chain, and that was not asked for.
    #[error("refusing to promote from `{}` to `{}`: it goes against the promotion chain {} ({})", .0.from, .0.to, .0.chain_text(), .0.departure_text())]
    AgainstChain(AgainstChain),
    /// Resources would flow back into a tenant of their lineage: one line per resource.
    #[error("refusing to promote from `{from}` to `{to}`: `{to}` is already in the lineage of {}, which came from `{to}` (metadata.syncedFrom):\n{}", count(resources.len(), "resource"), listing(resources))]
    Lineage {
        /// The source tenant.
        from: String,
        /// The target tenant.
        to: String,
        /// The resources refused, e.g. ``Agent `support-bot` ``.
        resources: Vec<String>,
    },
    /// Resources of the target, created there directly, hold the names promotion needs.
    #[error("refusing to promote into `{to}`: {} already exist(s) there with other IDs (created in `{to}` directly, not by promotion); promotion never touches those, so rename or remove them in `{to}` first", resources.join(", "))]
    NameTaken {
        /// The target tenant.
        to: String,
        /// The resources in the way, with their IDs.
        resources: Vec<String>,
    },
    /// A single step was asked for whose dependencies are not in the target yet.
    #[error("step `{step}` cannot run alone: its resources reference resources that are not in `{to}` yet: {}; run the earlier steps first, or promote without --step", missing.join(", "))]
    MissingDependencies {
        /// The step.
        step: String,
        /// The target tenant.
        to: String,
        /// What is missing, and who needs it.
        missing: Vec<String>,
    },
    /// The source tenant itself has dangling references.
    #[error("tenant `{from}` has dangling references: {}", problems.join("; "))]
    DanglingSource {
        /// The source tenant.
        from: String,
        /// Each dangling reference.
        problems: Vec<String>,
    },
    /// An encrypted value could not be re-encrypted. Carries no value.
    #[error("{resource}, field {field}: {reason}")]
    Secret {
        /// The resource, e.g. ``Connection `crm` ``.
        resource: String,
        /// The field, e.g. `spec.credentials.apiKey`.
        field: String,
        /// Why (never the value).
        reason: String,
    },
    /// The mapped resources do not plan (should not happen with a consistent source).
    #[error("the promoted resources do not form a valid tenant: {}", diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The problems.
        diagnostics: Vec<Diagnostic>,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A resource could not be written as YAML.
    #[error(transparent)]
    Encode(#[from] crate::domain::yaml::EncodeError),
    /// The actor may not promote between these tenants.
    #[error(transparent)]
    Access(#[from] crate::domain::access::AccessError),
}

/// At most this many resources are listed in a refusal, then "and N more".
pub const LISTED_AT_MOST: usize = 10;

/// `n` things, e.g. `3 resources`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// One indented line per item, at most [`LISTED_AT_MOST`], then `and N more`.
fn listing(items: &[String]) -> String {
    let mut lines: Vec<String> = items
        .iter()
        .take(LISTED_AT_MOST)
        .map(|i| format!("  {i}"))
        .collect();
    if items.len() > LISTED_AT_MOST {
        lines.push(format!("  and {} more", items.len() - LISTED_AT_MOST));
    }
    lines.join("\n")
}

impl PromoteError {
    /// What would fix the refusal, for a `hint:` line, where there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            PromoteError::AgainstChain(a) => Some(format!(
                "{}; or pass --against-chain to promote anyway (the promotion is then recorded as against the chain)",
                a.forward_instead()
            )),
            PromoteError::Lineage { to, .. } => Some(format!(
                "promotion flows one way only: change them in `{to}` and promote them forward from there"
            )),
            _ => None,
        }
    }
}

/// What to promote.
#[derive(Debug, Clone)]
pub struct Request {
    /// The source tenant.
    pub from: String,
    /// The target tenant.
    pub to: String,
    /// Run only this step (kind).
    pub step: Option<Kind>,
    /// Whether source and target live in the same store.
    pub same_store: bool,
    /// The `${vars.*}` names the target declares (its `tenant.toml`), if known.
    pub defined_variables: Option<Vec<String>>,
    /// The repo's promotion chain (empty: none).
    pub chain: Chain,
    /// Promote even against the chain, and record it.
    pub against_chain: bool,
}

/// The keys a promotion needs. Private keys never leave this struct's users.
#[derive(Clone)]
pub struct Keys {
    /// The source tenant's private key.
    pub source_identity: String,
    /// The target tenant's private key (to compare with its current values).
    pub target_identity: String,
    /// The target tenant's public key.
    pub target_recipient: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("target_recipient", &self.target_recipient)
            .finish_non_exhaustive()
    }
}

/// One promoted resource: where it came from and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Kind.
    pub kind: Kind,
    /// Name (the same in both tenants).
    pub name: String,
    /// ID in the source tenant.
    pub source_id: String,
    /// ID in the target tenant.
    pub id: String,
    /// The origin recorded in `metadata.syncedFrom`.
    pub synced_from: SyncedFrom,
}

/// Counts of published versions a promotion carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// Versions the target does not have yet.
    pub create: usize,
    /// Versions the target has with other content.
    pub update: usize,
    /// Versions the target has already.
    pub skip: usize,
}

/// The source tenant rewritten for the target, before planning.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    /// The resources to upsert, stored form, target IDs.
    pub resources: Vec<Resource>,
    /// What was selected, in step order.
    pub entries: Vec<Entry>,
    /// Published versions that differ from the target's.
    pub versions: Vec<VersionRecord>,
    /// Counts of versions.
    pub version_summary: VersionSummary,
    /// `${vars.*}` names the promoted resources use.
    pub variables: Vec<String>,
    /// Of those, the ones the target does not declare.
    pub missing_variables: Vec<String>,
    /// Notes for the reader.
    pub warnings: Vec<String>,
}

/// Reads drafts of a tenant by ID (stored form); unknown IDs are left out.
pub type FetchDrafts<'a> = &'a dyn Fn(&[String]) -> Result<Vec<Resource>, StoreError>;

/// Reads published versions of a tenant by resource ID.
pub type FetchVersions<'a> = &'a dyn Fn(&[String]) -> Result<Vec<VersionRecord>, StoreError>;

/// The pure inputs of [`map_tenant`].
pub struct MapInput<'a> {
    /// What to promote.
    pub request: &'a Request,
    /// Every draft of the source tenant (stored form).
    pub source: Vec<Resource>,
    /// The target tenant's index.
    pub target_index: &'a Index,
    /// The keys.
    pub keys: &'a Keys,
    /// The target's drafts of the given IDs.
    pub fetch_target: FetchDrafts<'a>,
    /// The source's published versions of the given IDs.
    pub source_versions: FetchVersions<'a>,
    /// The target's published versions of the given IDs.
    pub target_versions: FetchVersions<'a>,
}

/// A readable label of a resource, e.g. ``Tool `crm-lookup` ``.
fn label(kind: Kind, name: &str) -> String {
    format!("{kind} `{name}`")
}

/// The selection: syncable resources and their references, transitively.
///
/// Returns the selected IDs; dangling references of the source are errors.
pub fn select(from: &str, source: &[Resource]) -> Result<BTreeSet<String>, PromoteError> {
    let by_id: HashMap<&str, &Resource> = source
        .iter()
        .filter_map(|r| r.id().map(|id| (id, r)))
        .collect();
    let mut selected: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<&Resource> = source.iter().filter(|r| r.metadata.syncable).collect();
    for r in &queue {
        selected.insert(r.id().unwrap_or_default().to_string());
    }
    let mut problems = Vec::new();
    while let Some(r) = queue.pop_front() {
        for (site, target) in r.refs() {
            match by_id.get(target.as_str()) {
                Some(t) => {
                    if selected.insert(target.clone()) {
                        queue.push_back(t);
                    }
                }
                None => problems.push(format!(
                    "{} references {} `{target}` at {}, which does not exist",
                    label(r.kind(), r.name()),
                    site.target,
                    site.path
                )),
            }
        }
    }
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(PromoteError::DanglingSource {
            from: from.to_string(),
            problems,
        });
    }
    Ok(selected)
}

/// The origin of a resource promoted out of `from`.
pub fn origin_of(from: &str, resource: &Resource) -> SyncedFrom {
    resource
        .metadata
        .synced_from
        .clone()
        .unwrap_or_else(|| SyncedFrom {
            tenant: from.to_string(),
            id: resource.id().unwrap_or_default().to_string(),
        })
}

/// Re-encrypt every `ENC[age,…]` value of a spec from the source key to the
/// target key, reusing the target's `previous` ciphertext at the same field
/// when it holds the same value.
fn reencrypt(
    value: &mut Value,
    previous: Option<&Value>,
    path: &str,
    keys: &Keys,
    request: &Request,
    resource: &str,
) -> Result<(), PromoteError> {
    match value {
        Value::String(s) if secrets::is_encrypted(s) => {
            let plain = secrets::decrypt(&request.from, &keys.source_identity, s).map_err(|e| {
                PromoteError::Secret {
                    resource: resource.to_string(),
                    field: path.to_string(),
                    reason: e.to_string(),
                }
            })?;
            let reuse = previous
                .and_then(Value::as_str)
                .filter(|p| secrets::is_encrypted(p))
                .filter(|p| {
                    secrets::decrypt(&request.to, &keys.target_identity, p)
                        .is_ok_and(|old| old == plain)
                })
                .map(str::to_string);
            *s = match reuse {
                Some(p) => p,
                None => secrets::encrypt(&keys.target_recipient, &plain).map_err(|e| {
                    PromoteError::Secret {
                        resource: resource.to_string(),
                        field: path.to_string(),
                        reason: e.to_string(),
                    }
                })?,
            };
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let prev = previous.and_then(|p| p.get(i));
                reencrypt(item, prev, &format!("{path}[{i}]"), keys, request, resource)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let prev = previous.and_then(|p| p.get(k));
                reencrypt(item, prev, &format!("{path}.{k}"), keys, request, resource)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether a spec holds any encrypted value (to skip the JSON round trip otherwise).
fn has_encrypted(v: &Value) -> bool {
    match v {
        Value::String(s) => secrets::is_encrypted(s),
        Value::Array(a) => a.iter().any(has_encrypted),
        Value::Object(o) => o.values().any(has_encrypted),
        _ => false,
    }
}

/// The rewrite of one source resource into the target.
struct Mapper<'a> {
    request: &'a Request,
    keys: &'a Keys,
    /// Source ID → target ID, for every source draft.
    ids: HashMap<String, String>,
}

impl Mapper<'_> {
    fn target_id(&self, source_id: &str, kind: Kind) -> String {
        self.ids.get(source_id).cloned().unwrap_or_else(|| {
            ids::promoted_id(&self.request.from, &self.request.to, source_id, kind)
        })
    }

    /// Rewrite `r`; `previous` is what the target holds for it now.
    fn map(&self, r: &Resource, previous: Option<&Resource>) -> Result<Resource, PromoteError> {
        let mut out = r.clone();
        let source_id = r.id().unwrap_or_default().to_string();
        out.metadata.synced_from = Some(origin_of(&self.request.from, r));
        out.metadata.id = Some(self.target_id(&source_id, r.kind()));
        out.visit_refs_mut(&mut |site, reference| {
            if !is_builtin(reference) {
                *reference = self.target_id(reference, site.target);
            }
        });
        let json = out.spec.to_json();
        if has_encrypted(&json) {
            let mut json = json;
            let prev = previous.map(|p| p.spec.to_json());
            reencrypt(
                &mut json,
                prev.as_ref(),
                "spec",
                self.keys,
                self.request,
                &label(r.kind(), r.name()),
            )?;
            out.spec = Spec::from_json(r.kind(), json).map_err(|e| PromoteError::Secret {
                resource: label(r.kind(), r.name()),
                field: "spec".into(),
                reason: format!("cannot rebuild the spec: {e}"),
            })?;
        }
        Ok(out)
    }
}

/// The drafts of a run, rewritten for the target.
struct MappedDrafts {
    /// The rewritten drafts, in run order.
    resources: Vec<Resource>,
    /// Where each came from and goes.
    entries: Vec<Entry>,
    /// Their target IDs, in run order.
    target_ids: Vec<String>,
}

impl<'a> Mapper<'a> {
    /// A mapper for `source`: each source draft's target ID from its origin.
    fn new(request: &'a Request, keys: &'a Keys, source: &[Resource]) -> Self {
        let ids = source
            .iter()
            .filter_map(|r| {
                let id = r.id()?;
                let o = origin_of(&request.from, r);
                Some((
                    id.to_string(),
                    ids::promoted_id(&o.tenant, &request.to, &o.id, r.kind()),
                ))
            })
            .collect();
        Mapper { request, keys, ids }
    }

    /// Rewrite the drafts of the run, against what the target holds for them now.
    fn map_drafts(
        &self,
        run: &[&Resource],
        fetch_target: FetchDrafts<'_>,
    ) -> Result<MappedDrafts, PromoteError> {
        let target_ids: Vec<String> = run
            .iter()
            .map(|r| self.target_id(r.id().unwrap_or_default(), r.kind()))
            .collect();
        let current: HashMap<String, Resource> = fetch_target(&target_ids)?
            .into_iter()
            .filter_map(|r| Some((r.id()?.to_string(), r)))
            .collect();
        let mut resources = Vec::with_capacity(run.len());
        let mut entries = Vec::with_capacity(run.len());
        for (r, id) in run.iter().zip(&target_ids) {
            resources.push(self.map(r, current.get(id))?);
            entries.push(Entry {
                kind: r.kind(),
                name: r.name().to_string(),
                source_id: r.id().unwrap_or_default().to_string(),
                id: id.clone(),
                synced_from: origin_of(&self.request.from, r),
            });
        }
        Ok(MappedDrafts {
            resources,
            entries,
            target_ids,
        })
    }

    /// Rewrite the published versions of the run, keeping their numbers: the
    /// versions the target lacks or holds with other content, and the counts.
    fn map_versions(
        &self,
        run: &[&Resource],
        target_ids: &[String],
        source_versions: FetchVersions<'_>,
        target_versions: FetchVersions<'_>,
    ) -> Result<(Vec<VersionRecord>, VersionSummary), PromoteError> {
        let source_ids: Vec<String> = run
            .iter()
            .map(|r| r.id().unwrap_or_default().to_string())
            .collect();
        let theirs: HashMap<(String, u64), VersionRecord> = target_versions(target_ids)?
            .into_iter()
            .map(|v| ((v.id.clone(), v.version), v))
            .collect();
        let mut versions = Vec::new();
        let mut summary = VersionSummary::default();
        for v in source_versions(&source_ids)? {
            let id = self.target_id(&v.id, v.resource.kind());
            let prev = theirs.get(&(id.clone(), v.version));
            let resource = self.map(&v.resource, prev.map(|p| &p.resource))?;
            let record = VersionRecord {
                id,
                version: v.version,
                resource,
                change_id: v.change_id.clone(),
                published_at: v.published_at.clone(),
            };
            match prev {
                Some(p) if *p == record => summary.skip += 1,
                Some(_) => {
                    summary.update += 1;
                    versions.push(record);
                }
                None => {
                    summary.create += 1;
                    versions.push(record);
                }
            }
        }
        Ok((versions, summary))
    }
}

/// Rewrite the source tenant for the target: select, map IDs and references,
/// re-encrypt secrets, carry versions, and check lineage, names and steps.
///
/// The steps: [`select`], [`check_lineage`], [`run_set`] (the selection or
/// one step of it), [`check_names_free`], [`check_step_dependencies`],
/// [`Mapper::map_drafts`], [`Mapper::map_versions`] and
/// [`variables_to_define`].
pub fn map_tenant(input: MapInput<'_>) -> Result<Mapped, PromoteError> {
    let MapInput {
        request,
        source,
        target_index,
        keys,
        fetch_target,
        source_versions,
        target_versions,
    } = input;
    let selected = select(&request.from, &source)?;
    check_lineage(request, &source, &selected)?;
    let mapper = Mapper::new(request, keys, &source);
    let run = run_set(request, &source, &selected);
    check_names_free(&mapper, &run, target_index)?;
    if let Some(step) = request.step {
        check_step_dependencies(step, &mapper, &run, &source, target_index)?;
    }
    let drafts = mapper.map_drafts(&run, fetch_target)?;
    let (versions, version_summary) =
        mapper.map_versions(&run, &drafts.target_ids, source_versions, target_versions)?;
    let (variables, missing_variables) = variables_to_define(&drafts.resources, request);
    let mut warnings = Vec::new();
    if selected.is_empty() {
        warnings.push(format!(
            "no resource of tenant `{}` is marked syncable: nothing to promote (set `metadata.syncable: true`)",
            request.from
        ));
    }
    Ok(Mapped {
        resources: drafts.resources,
        entries: drafts.entries,
        versions,
        version_summary,
        variables,
        missing_variables,
        warnings,
    })
}

/// Lineage: nothing selected may flow back into the tenant it came from.
fn check_lineage(
    request: &Request,
    source: &[Resource],
    selected: &BTreeSet<String>,
) -> Result<(), PromoteError> {
    let mut lineage: Vec<String> = source
        .iter()
        .filter(|r| r.id().is_some_and(|id| selected.contains(id)))
        .filter(|r| origin_of(&request.from, r).tenant == request.to)
        .map(|r| label(r.kind(), r.name()))
        .collect();
    if lineage.is_empty() {
        return Ok(());
    }
    lineage.sort();
    Err(PromoteError::Lineage {
        from: request.from.clone(),
        to: request.to.clone(),
        resources: lineage,
    })
}

/// The resources this run promotes: the selection, or one step of it, by kind and name.
fn run_set<'a>(
    request: &Request,
    source: &'a [Resource],
    selected: &BTreeSet<String>,
) -> Vec<&'a Resource> {
    let mut run: Vec<&Resource> = source
        .iter()
        .filter(|r| r.id().is_some_and(|id| selected.contains(id)))
        .filter(|r| request.step.is_none_or(|k| r.kind() == k))
        .collect();
    run.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
    run
}

/// Names held in the target by resources that did not come from this promotion.
fn check_names_free(
    mapper: &Mapper<'_>,
    run: &[&Resource],
    target_index: &Index,
) -> Result<(), PromoteError> {
    let mut taken = Vec::new();
    for r in run {
        let id = mapper.target_id(r.id().unwrap_or_default(), r.kind());
        if let Some(e) = target_index.by_name(r.kind(), r.name()) {
            if e.id != id {
                taken.push(format!("{} ({})", label(r.kind(), r.name()), e.id));
            }
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    Err(PromoteError::NameTaken {
        to: mapper.request.to.clone(),
        resources: taken,
    })
}

/// A single step needs its dependencies in the target already.
fn check_step_dependencies(
    step: Kind,
    mapper: &Mapper<'_>,
    run: &[&Resource],
    source: &[Resource],
    target_index: &Index,
) -> Result<(), PromoteError> {
    let names: HashMap<&str, (Kind, &str)> = source
        .iter()
        .filter_map(|r| Some((r.id()?, (r.kind(), r.name()))))
        .collect();
    let in_run: HashSet<&str> = run.iter().filter_map(|r| r.id()).collect();
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in run {
        for (_, t) in r.refs() {
            if in_run.contains(t.as_str()) {
                continue;
            }
            let (kind, name) = names
                .get(t.as_str())
                .copied()
                .unwrap_or((Kind::Document, "?"));
            if target_index.get(&mapper.target_id(&t, kind)).is_none() {
                missing
                    .entry(label(kind, name))
                    .or_default()
                    .insert(label(r.kind(), r.name()));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(PromoteError::MissingDependencies {
        step: step.step().to_string(),
        to: mapper.request.to.clone(),
        missing: missing
            .into_iter()
            .map(|(m, by)| {
                format!(
                    "{m} (needed by {})",
                    by.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect(),
    })
}

/// The `${vars.*}` names the promoted resources use, and of those the ones
/// the target does not define.
fn variables_to_define(resources: &[Resource], request: &Request) -> (Vec<String>, Vec<String>) {
    let mut model = TenantModel::default();
    for r in resources {
        model.insert(r.clone());
    }
    let variables = pipeline::variables_of(&model);
    let defined: BTreeSet<&str> = request
        .defined_variables
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let missing = variables
        .iter()
        .filter(|v| !defined.contains(v.as_str()))
        .cloned()
        .collect();
    (variables, missing)
}

/// A planned promotion: the target's plan plus what promotion adds to it.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The request.
    pub request: Request,
    /// The plan for the target tenant (core shape; never deletes).
    pub plan: Plan,
    /// The mapping.
    pub mapped: Mapped,
    /// Set when the promotion goes against the chain (asked for with `against_chain`).
    pub against_chain: Option<AgainstChain>,
    /// Who promotes ([`plan_as`]'s actor), recorded as the creator or last editor of what it writes.
    pub by: Option<String>,
}

/// Plan a promotion from `source` (store holding `request.from`) to `target`
/// (store holding `request.to`; may be the same store).
/// Plan a promotion as `actor`, an admin or owner of both tenants (each
/// checked in its own store): [`plan`] after the role check. `ferry promote`
/// and the tenant-sync endpoint both call this.
pub fn plan_as(
    source: &dyn Store,
    target: &dyn Store,
    actor: &crate::service::access::Actor,
    request: &Request,
) -> Result<Promotion, PromoteError> {
    crate::domain::access::authorize_promote(
        &source.access()?,
        &target.access()?,
        actor.name(),
        &request.from,
        &request.to,
    )?;
    source.tenant(&request.from)?;
    target.tenant(&request.to)?;
    let mut promotion = plan(source, target, request)?;
    promotion.by = actor.name().map(str::to_string);
    Ok(promotion)
}

/// The tenants `actor` may promote `from` into, by name: every other tenant
/// where they are an admin or owner (every other one while the store has no
/// users), once they may read `from` (a viewer). The sync panel offers these.
pub fn targets_for(
    store: &dyn Store,
    actor: &crate::service::access::Actor,
    from: &str,
) -> Result<Vec<String>, PromoteError> {
    use crate::domain::access::Role;
    crate::service::access::authorize::<PromoteError>(
        store,
        actor,
        from,
        Role::Viewer,
        "reading the sync panel",
    )?;
    let access = crate::service::access::access_of(store, actor)?;
    Ok(store
        .tenants()?
        .into_iter()
        .map(|t| t.name)
        .filter(|t| t != from)
        .filter(|t| {
            access
                .require(actor.name(), t, Role::Admin, "promoting")
                .is_ok()
        })
        .collect())
}

/// Plan a promotion (no role check: see [`plan_as`]).
pub fn plan(
    source: &dyn Store,
    target: &dyn Store,
    request: &Request,
) -> Result<Promotion, PromoteError> {
    if request.same_store && request.from == request.to {
        return Err(PromoteError::SameTenant {
            tenant: request.from.clone(),
        });
    }
    let against_chain = check_chain(request)?;
    source.tenant(&request.from)?;
    let target_record = target.tenant(&request.to)?;
    let keys = Keys {
        source_identity: source.identity(&request.from)?,
        target_identity: target.identity(&request.to)?,
        target_recipient: target_record.recipient,
    };
    let (_, index) = target.index(&request.to)?;
    let drafts = source.all_drafts(&request.from)?;
    // A variable is defined when the target declares it or already has a value for it.
    let mut with_values = request.clone();
    let mut defined = request.defined_variables.clone().unwrap_or_default();
    defined.extend(crate::service::vars::set_names(target, &request.to)?);
    with_values.defined_variables = Some(defined);
    let mapped = map_tenant(MapInput {
        request: &with_values,
        source: drafts,
        target_index: &index,
        keys: &keys,
        fetch_target: &|ids| target.drafts(&request.to, ids),
        source_versions: &|ids| source.versions(&request.from, ids),
        target_versions: &|ids| target.versions(&request.to, ids),
    })?;
    let (plan, diags) = pipeline::plan_resources(
        target,
        &request.to,
        mapped.resources.clone(),
        DiffOptions { prune: false },
    )?;
    let Some(mut plan) = plan else {
        return Err(PromoteError::Invalid {
            diagnostics: diags.into_iter().filter(|d| d.is_error()).collect(),
        });
    };
    if diagnostic::has_errors(&diags) {
        return Err(PromoteError::Invalid { diagnostics: diags });
    }
    // Resources of the target that promotion did not bring are not its business.
    plan.absent.clear();
    plan.warnings
        .extend(against_chain.iter().map(AgainstChain::record_line));
    plan.warnings.extend(mapped.warnings.iter().cloned());
    Ok(Promotion {
        request: request.clone(),
        plan,
        mapped,
        against_chain,
        by: None,
    })
}

/// The promotion order: with a chain, one step forward along it, unless the
/// request asks to go against it; then how it departs, to record.
pub fn check_chain(request: &Request) -> Result<Option<AgainstChain>, PromoteError> {
    match request.chain.judge(&request.from, &request.to) {
        ChainMove::Unchained | ChainMove::Forward => Ok(None),
        ChainMove::Against(a) if request.against_chain => Ok(Some(a)),
        ChainMove::Against(a) => Err(PromoteError::AgainstChain(a)),
    }
}

/// Whether applying the promotion would write anything.
pub fn has_changes(p: &Promotion) -> bool {
    p.plan.has_changes() || !p.mapped.versions.is_empty() || !p.plan.refresh.is_empty()
}

/// Apply a planned promotion to the target store, in one transaction.
pub fn apply(target: &mut dyn Store, p: &Promotion) -> Result<ApplyReport, PromoteError> {
    Ok(apply::write_plan(
        target,
        &p.plan,
        p.mapped.versions.clone(),
        ApplyOptions::default(),
        p.by.as_deref(),
    )?)
}

/// The target tenant's tree after the promotion: its drafts with the promoted
/// resources upserted, rendered like `ferry export` (references by name,
/// `tenant.toml` with the tenant's public key and variables).
pub fn target_tree(target: &dyn Store, p: &Promotion) -> Result<MemoryTree, PromoteError> {
    let record = target.tenant(&p.request.to)?;
    let mut by_id: BTreeMap<String, Resource> = target
        .all_drafts(&p.request.to)?
        .into_iter()
        .filter_map(|r| Some((r.id()?.to_string(), r)))
        .collect();
    for r in &p.mapped.resources {
        by_id.insert(r.id().unwrap_or_default().to_string(), r.clone());
    }
    let names = NameTable::of_resources(by_id.values());
    let mut model = TenantModel::default();
    for r in by_id.values() {
        model.insert(render_names(r, &names));
    }
    let mut files = tree::encode_model(&model)?;
    let tf = TenantFile {
        name: p.request.to.clone(),
        environment: record.environment,
        recipient: Some(record.recipient),
        variables: pipeline::variables_of(&model),
    };
    files
        .files
        .insert(tree::TENANT_FILE.to_string(), tf.to_toml().into_bytes());
    Ok(files)
}

/// One promoted resource in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryReport {
    /// What the plan does with it.
    pub action: ActionKind,
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// ID in the target.
    pub id: String,
    /// ID in the source.
    pub source_id: String,
    /// The origin recorded in `metadata.syncedFrom`.
    pub synced_from: SyncedFrom,
}

/// One step of a promotion, in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// The step name, e.g. `tools`.
    pub step: &'static str,
    /// Counts.
    pub create: usize,
    /// Counts.
    pub update: usize,
    /// Counts.
    pub skip: usize,
    /// The resources of the step, by name.
    pub resources: Vec<EntryReport>,
}

/// What `ferry promote --output json` prints: the plan in the core shape,
/// plus the promotion's own fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReport {
    /// The source tenant.
    pub from: String,
    /// The target tenant.
    pub to: String,
    /// The one step run, if only one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<&'static str>,
    /// The plan (without payloads).
    #[serde(flatten)]
    pub plan: Plan,
    /// The promoted resources, grouped by step, in step order.
    pub steps: Vec<StepReport>,
    /// Published versions carried.
    pub versions: VersionSummary,
    /// `${vars.*}` names the target tenant does not define yet.
    pub missing_variables: Vec<String>,
    /// Set when the promotion goes against the promotion chain: the chain and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against_chain: Option<AgainstChain>,
}

/// The report of a planned promotion.
pub fn report(p: &Promotion) -> PromotionReport {
    let actions: HashMap<&str, ActionKind> = p
        .plan
        .actions
        .iter()
        .map(|a| (a.id.as_str(), a.action))
        .collect();
    let mut steps = Vec::new();
    for kind in Kind::ALL {
        let mut s = StepReport {
            step: kind.step(),
            create: 0,
            update: 0,
            skip: 0,
            resources: Vec::new(),
        };
        for e in p.mapped.entries.iter().filter(|e| e.kind == kind) {
            let action = actions
                .get(e.id.as_str())
                .copied()
                .unwrap_or(ActionKind::Skip);
            match action {
                ActionKind::Create => s.create += 1,
                ActionKind::Update => s.update += 1,
                _ => s.skip += 1,
            }
            s.resources.push(EntryReport {
                action,
                kind,
                name: e.name.clone(),
                id: e.id.clone(),
                source_id: e.source_id.clone(),
                synced_from: e.synced_from.clone(),
            });
        }
        if !s.resources.is_empty() {
            steps.push(s);
        }
    }
    PromotionReport {
        from: p.request.from.clone(),
        to: p.request.to.clone(),
        step: p.request.step.map(Kind::step),
        plan: p.plan.report(),
        steps,
        versions: p.mapped.version_summary,
        missing_variables: p.mapped.missing_variables.clone(),
        against_chain: p.against_chain.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Metadata, ToolSpec};

    /// The sync panel offers every other tenant where the actor is an admin
    /// or owner (every other one while the store has no users), and only to
    /// a viewer of the source.
    #[test]
    fn the_panel_offers_the_tenants_the_actor_may_promote_into() {
        use crate::backend::store::{AccessStore, ResourceStore};
        use crate::domain::access::Role;
        use crate::service::access::Actor;
        let (_tmp, mut store) = pipeline::tests::applied();
        for t in ["acme-staging", "acme-prod"] {
            store
                .create_tenant(t, None, &crate::domain::secrets::generate_keypair())
                .unwrap();
        }
        let from = "acme-dev";
        let every = targets_for(&store, &Actor::default(), from).unwrap();
        assert_eq!(every, ["acme-prod", "acme-staging"]);
        for user in ["root", "ada", "eve"] {
            store.add_user(user).unwrap();
        }
        store.grant("ada", from, Role::Viewer).unwrap();
        store.grant("ada", "acme-staging", Role::Admin).unwrap();
        store.grant("ada", "acme-prod", Role::Editor).unwrap();
        let ada = targets_for(&store, &Actor::named("ada"), from).unwrap();
        assert_eq!(ada, ["acme-staging"]);
        let root = targets_for(&store, &Actor::named("root"), from).unwrap();
        assert_eq!(root, every);
        let e = targets_for(&store, &Actor::named("eve"), from).unwrap_err();
        assert!(e.to_string().contains("reading the sync panel"), "{e}");
    }

    fn tool(id: &str, name: &str, syncable: bool, connection: Option<&str>) -> Resource {
        Resource {
            metadata: Metadata {
                id: Some(id.into()),
                name: name.into(),
                syncable,
                synced_from: None,
                origin_id: None,
                created_by: Some("dora".into()),
            },
            spec: Spec::Tool(Box::new(ToolSpec {
                description: None,
                tool_type: "http".into(),
                connection: connection.map(str::to_string),
                knowledge_base: None,
                request: None,
                code: None,
                input_schema: None,
                actions: Vec::new(),
            })),
            content: None,
        }
    }

    fn connection(id: &str, token: &str) -> Resource {
        let spec = serde_json::json!({"type": "http", "baseUrl": "${vars.URL}", "credentials": {"token": token}});
        Resource {
            metadata: Metadata {
                id: Some(id.into()),
                name: "crm".into(),
                syncable: false,
                synced_from: None,
                origin_id: None,
                created_by: None,
            },
            spec: Spec::from_json(Kind::Connection, spec).unwrap(),
            content: None,
        }
    }

    fn request(from: &str, to: &str) -> Request {
        Request {
            from: from.into(),
            to: to.into(),
            step: None,
            same_store: true,
            defined_variables: Some(Vec::new()),
            chain: Chain::default(),
            against_chain: false,
        }
    }

    fn run(
        req: &Request,
        keys: &Keys,
        source: Vec<Resource>,
        target: Vec<Resource>,
    ) -> Result<Mapped, PromoteError> {
        let index = index_of(&target);
        map_tenant(MapInput {
            request: req,
            source,
            target_index: &index,
            keys,
            fetch_target: &|ids| {
                Ok(target
                    .iter()
                    .filter(|r| ids.iter().any(|i| Some(i.as_str()) == r.id()))
                    .cloned()
                    .collect())
            },
            source_versions: &|_| Ok(Vec::new()),
            target_versions: &|_| Ok(Vec::new()),
        })
    }

    fn keys() -> (Keys, secrets::KeyPair, secrets::KeyPair) {
        let s = secrets::generate_keypair();
        let t = secrets::generate_keypair();
        (
            Keys {
                source_identity: s.identity.clone(),
                target_identity: t.identity.clone(),
                target_recipient: t.recipient.clone(),
            },
            s,
            t,
        )
    }

    #[test]
    fn maps_the_closure_with_origin_ids_and_secrets() {
        let (k, s, t) = keys();
        let enc = secrets::encrypt(&s.recipient, b"hunter2-value").unwrap();
        let mut agent_tool = tool("tol_a", "a", true, Some("con_c"));
        if let Spec::Tool(x) = &mut agent_tool.spec {
            x.knowledge_base = None;
        }
        let src = vec![
            agent_tool,
            tool("tol_b", "b", false, None),
            connection("con_c", &enc),
        ];
        let req = request("dev", "staging");
        let m = run(&req, &k, src, Vec::new()).unwrap();
        assert_eq!(
            m.entries.len(),
            2,
            "the syncable tool and its connection, not `b`"
        );
        let tool_out = m.resources.iter().find(|r| r.kind() == Kind::Tool).unwrap();
        let con_id = ids::promoted_id("dev", "staging", "con_c", Kind::Connection);
        assert_eq!(
            tool_out.id(),
            Some(ids::promoted_id("dev", "staging", "tol_a", Kind::Tool).as_str())
        );
        assert_eq!(tool_out.refs()[0].1, con_id);
        assert_eq!(tool_out.metadata.created_by.as_deref(), Some("dora"));
        let con = m
            .resources
            .iter()
            .find(|r| r.kind() == Kind::Connection)
            .unwrap();
        let new_enc = con.spec.to_json()["credentials"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(new_enc, enc);
        assert_eq!(
            secrets::decrypt("staging", &t.identity, &new_enc).unwrap(),
            b"hunter2-value"
        );
        assert_eq!(m.missing_variables, ["URL"]);

        // With the target holding the same value already, its ciphertext is kept.
        let src = vec![
            tool("tol_a", "a", true, Some("con_c")),
            connection("con_c", &enc),
        ];
        let m2 = run(&req, &k, src, vec![con.clone()]).unwrap();
        let again = m2
            .resources
            .iter()
            .find(|r| r.kind() == Kind::Connection)
            .unwrap();
        assert_eq!(again, con);
    }

    #[test]
    fn origin_decides_the_id_and_lineage_refuses_going_back() {
        let (k, _, _) = keys();
        let mut staged = tool("tol_s", "a", true, None);
        staged.metadata.synced_from = Some(SyncedFrom {
            tenant: "dev".into(),
            id: "tol_d".into(),
        });
        let m = run(
            &request("staging", "prod"),
            &k,
            vec![staged.clone()],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            m.resources[0].id(),
            Some(ids::promoted_id("dev", "prod", "tol_d", Kind::Tool).as_str())
        );
        assert_eq!(
            m.resources[0].metadata.synced_from.as_ref().unwrap().tenant,
            "dev"
        );
        let e = run(&request("staging", "dev"), &k, vec![staged], Vec::new()).unwrap_err();
        assert!(matches!(e, PromoteError::Lineage { .. }), "{e}");
    }

    #[test]
    fn dangling_source_references_are_named() {
        let (k, _, _) = keys();
        let e = run(
            &request("dev", "prod"),
            &k,
            vec![tool("tol_a", "a", true, Some("con_gone"))],
            Vec::new(),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("Tool `a`") && msg.contains("con_gone") && msg.contains("spec.connection"),
            "{msg}"
        );
    }

    fn index_of(target: &[Resource]) -> Index {
        Index::new(
            target
                .iter()
                .map(|r| crate::domain::state::IndexEntry {
                    id: r.id().unwrap().into(),
                    kind: r.kind(),
                    name: r.name().into(),
                    content_hash: crate::domain::state::content_hash(r),
                    file_hash: String::new(),
                    refs: r.refs().into_iter().map(|(_, x)| x).collect(),
                    revision: 1,
                })
                .collect(),
        )
    }

    #[test]
    fn a_lineage_refusal_lists_ten_resources_then_how_many_more() {
        let source: Vec<Resource> = (0..12)
            .map(|i| {
                let mut t = tool(&format!("tol_{i:02}"), &format!("t{i:02}"), true, None);
                t.metadata.synced_from = Some(SyncedFrom {
                    tenant: "dev".into(),
                    id: format!("tol_d{i}"),
                });
                t
            })
            .collect();
        let selected = select("staging", &source).unwrap();
        let e = check_lineage(&request("staging", "dev"), &source, &selected).unwrap_err();
        let msg = e.to_string();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 12, "{msg}");
        assert!(lines[0].contains("lineage of 12 resources"), "{msg}");
        assert_eq!(lines[1], "  Tool `t00`");
        assert_eq!(lines[10], "  Tool `t09`");
        assert_eq!(lines[11], "  and 2 more");
        assert!(e.hint().unwrap().contains("change them in `dev`"));
        assert!(check_lineage(&request("staging", "prod"), &source, &selected).is_ok());
    }

    #[test]
    fn the_run_set_is_the_selection_or_one_step_in_name_order() {
        let source = vec![
            tool("tol_b", "b", true, Some("con_c")),
            tool("tol_a", "a", true, None),
            connection("con_c", "x"),
        ];
        let selected = select("dev", &source).unwrap();
        let all = run_set(&request("dev", "prod"), &source, &selected);
        let names: Vec<&str> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names, ["crm", "a", "b"], "by kind, then name");
        let mut step = request("dev", "prod");
        step.step = Some(Kind::Tool);
        assert_eq!(run_set(&step, &source, &selected).len(), 2);
    }

    #[test]
    fn a_name_held_by_another_id_in_the_target_is_refused() {
        let (k, _, _) = keys();
        let req = request("dev", "prod");
        let source = vec![tool("tol_a", "a", true, None)];
        let mapper = Mapper::new(&req, &k, &source);
        let run: Vec<&Resource> = source.iter().collect();
        let theirs = tool("tol_other", "a", false, None);
        let e = check_names_free(&mapper, &run, &index_of(&[theirs])).unwrap_err();
        assert!(e.to_string().contains("Tool `a` (tol_other)"), "{e}");
        let promoted = mapper.map(&source[0], None).unwrap();
        assert!(check_names_free(&mapper, &run, &index_of(&[promoted])).is_ok());
    }

    #[test]
    fn a_step_alone_needs_its_dependencies_in_the_target() {
        let (k, _, _) = keys();
        let req = request("dev", "prod");
        let source = vec![
            tool("tol_a", "a", true, Some("con_c")),
            connection("con_c", "x"),
        ];
        let mapper = Mapper::new(&req, &k, &source);
        let run: Vec<&Resource> = source.iter().take(1).collect();
        let e = check_step_dependencies(Kind::Tool, &mapper, &run, &source, &index_of(&[]))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("Connection `crm` (needed by Tool `a`)"),
            "{e}"
        );
        let there = mapper.map(&source[1], None).unwrap();
        assert!(
            check_step_dependencies(Kind::Tool, &mapper, &run, &source, &index_of(&[there]))
                .is_ok()
        );
    }

    #[test]
    fn variables_to_define_leaves_out_the_defined_ones() {
        let resources = vec![connection("con_c", "x")];
        let mut req = request("dev", "prod");
        assert_eq!(
            variables_to_define(&resources, &req),
            (vec!["URL".to_string()], vec!["URL".to_string()])
        );
        req.defined_variables = Some(vec!["URL".into()]);
        assert_eq!(
            variables_to_define(&resources, &req).1,
            Vec::<String>::new()
        );
    }

    #[test]
    fn versions_keep_their_numbers_and_are_counted() {
        let (k, _, _) = keys();
        let req = request("dev", "prod");
        let source = vec![tool("tol_a", "a", true, None)];
        let mapper = Mapper::new(&req, &k, &source);
        let run: Vec<&Resource> = source.iter().collect();
        let version = |n: u64, r: Resource| VersionRecord {
            id: r.id().unwrap().to_string(),
            version: n,
            resource: r,
            change_id: Some(format!("chg_{n}")),
            published_at: "2026-01-01T00:00:00Z".into(),
        };
        let src = vec![version(1, source[0].clone()), version(2, source[0].clone())];
        let mapped_1 = version(1, mapper.map(&source[0], None).unwrap());
        let target_ids = vec![mapper.target_id("tol_a", Kind::Tool)];
        let (versions, summary) = mapper
            .map_versions(&run, &target_ids, &|_| Ok(src.clone()), &|_| {
                Ok(vec![mapped_1.clone()])
            })
            .unwrap();
        assert_eq!(
            summary,
            VersionSummary {
                create: 1,
                update: 0,
                skip: 1
            }
        );
        assert_eq!(versions.len(), 1);
        assert_eq!(
            (versions[0].version, versions[0].id.as_str()),
            (2, target_ids[0].as_str())
        );
    }

    #[test]
    fn the_chain_refuses_going_backward_unless_asked_and_then_says_so() {
        let mut req = request("prod", "staging");
        req.chain = Chain::new(vec!["dev".into(), "staging".into(), "prod".into()]).unwrap();
        let e = check_chain(&req).unwrap_err();
        assert!(
            e.to_string()
                .contains("against the promotion chain dev → staging → prod"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("--against-chain"));
        req.against_chain = true;
        let against = check_chain(&req).unwrap().unwrap();
        assert!(against
            .record_line()
            .starts_with("promoted against the chain"));
        let forward = Request {
            from: "dev".into(),
            ..req
        };
        assert_eq!(check_chain(&forward).unwrap(), None);
    }
}
