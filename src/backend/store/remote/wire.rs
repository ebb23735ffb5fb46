//! The bodies of ferry's own API (`/api/ferry/v1/…`): what the remote store
//! sends and `ferry serve` answers, one type per request or answer.
//!
//! A resource travels in stored form as its canonical JSON document plus
//! its content as base64 ([`WireResource`]), exactly what a saved plan
//! holds, so both ends rebuild the same [`Resource`] and the same content
//! hash. Both the client (`remote/mod.rs`) and the server
//! (`server/ferry_api.rs`) use these types, so the two cannot disagree.

use crate::backend::store::BatchDraft;
use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::store::{DraftStamp, SyncRecord, SyncWrite, VersionRecord, WriteBatch};
use crate::domain::access::Role;
use crate::domain::diagnostic::Diagnostic;
use crate::domain::model::Resource;
use crate::domain::plan::{resource_from_document, HashRefresh};
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::state::{canonical_json, IndexEntry};
use crate::domain::tree::TenantFile;

/// The prefix of every path of ferry's own API.
pub const PREFIX: &str = "/api/ferry/v1";

/// A resource in stored form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResource {
    /// The canonical JSON document (`apiVersion`, `kind`, `metadata`, `spec`).
    pub document: Value,
    /// A document's content file, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl WireResource {
    /// The wire form of `resource`.
    pub fn of(resource: &Resource) -> WireResource {
        WireResource {
            document: serde_json::from_slice(&canonical_json(resource)).unwrap_or(Value::Null),
            content: resource
                .content
                .as_ref()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
        }
    }

    /// The resource again; the error says what does not decode.
    pub fn resource(&self) -> Result<Resource, String> {
        resource_from_document(&self.document, self.content.as_deref())
    }
}

/// The wire form of a list of resources.
pub fn wire_all(list: &[Resource]) -> Vec<WireResource> {
    list.iter().map(WireResource::of).collect()
}

/// A list of resources from the wire.
pub fn resources(list: &[WireResource]) -> Result<Vec<Resource>, String> {
    list.iter().map(WireResource::resource).collect()
}

/// `POST /tenants`: a new tenant with its key pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTenant {
    /// The name.
    pub name: String,
    /// The environment.
    pub environment: Option<String>,
    /// The age public key.
    pub recipient: String,
    /// The age private key (kept by the server's store only).
    pub identity: String,
}

/// A tenant's private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// `AGE-SECRET-KEY-1…`.
    pub identity: String,
}

/// A list of resource IDs (lookups by ID).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ids {
    /// The IDs.
    pub ids: Vec<String>,
}

/// A store or tenant revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    /// The revision.
    pub revision: u64,
}

/// A tenant's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexBody {
    /// The tenant revision.
    pub revision: u64,
    /// Every entry.
    pub entries: Vec<IndexEntry>,
}

/// A list of resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resources {
    /// The resources, stored form.
    pub resources: Vec<WireResource>,
}

impl Resources {
    /// The wire form of a list of resources.
    pub fn of(list: &[Resource]) -> Resources {
        Resources {
            resources: wire_all(list),
        }
    }
}

/// One published version of a resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireVersion {
    /// The resource ID.
    pub id: String,
    /// The version number.
    pub version: u64,
    /// The resource as published.
    pub resource: WireResource,
    /// The change that made it.
    pub change_id: Option<String>,
    /// When, RFC 3339.
    pub published_at: String,
}

impl WireVersion {
    /// The wire form of a version.
    pub fn of(v: &VersionRecord) -> WireVersion {
        WireVersion {
            id: v.id.clone(),
            version: v.version,
            resource: WireResource::of(&v.resource),
            change_id: v.change_id.clone(),
            published_at: v.published_at.clone(),
        }
    }

    /// The version again.
    pub fn record(&self) -> Result<VersionRecord, String> {
        Ok(VersionRecord {
            id: self.id.clone(),
            version: self.version,
            resource: self.resource.resource()?,
            change_id: self.change_id.clone(),
            published_at: self.published_at.clone(),
        })
    }
}

/// A list of published versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versions {
    /// The versions.
    pub versions: Vec<WireVersion>,
}

/// The wire form of versions.
pub fn wire_versions(list: &[VersionRecord]) -> Versions {
    Versions {
        versions: list.iter().map(WireVersion::of).collect(),
    }
}

/// Versions from the wire.
pub fn version_records(v: &Versions) -> Result<Vec<VersionRecord>, String> {
    v.versions.iter().map(WireVersion::record).collect()
}

/// The sync records of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireSyncWrite {
    /// `<instance>/<tenant>`.
    pub source_key: String,
    /// `(local_id, origin_id)` pairs.
    pub origins: Vec<(String, String)>,
}

/// `POST /tenants/{tenant}/write`: a [`WriteBatch`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    /// The tenant revision it was planned against.
    pub base_revision: u64,
    /// Resources to create or update, with their unit hashes.
    pub upserts: Vec<(WireResource, String)>,
    /// IDs to delete.
    pub deletes: Vec<String>,
    /// File hashes to refresh.
    pub refresh: Vec<HashRefresh>,
    /// The source commit to record.
    pub commit: Option<String>,
    /// Published versions to record as they are.
    pub versions: Vec<WireVersion>,
    /// Sync records to write in the same transaction.
    pub syncs: Option<WireSyncWrite>,
}

impl Batch {
    /// The wire form of a batch.
    pub fn of(b: &WriteBatch<'_>) -> Batch {
        Batch {
            base_revision: b.base_revision,
            upserts: b
                .upserts
                .iter()
                .map(|(r, h)| (WireResource::of(r), h.clone()))
                .collect(),
            deletes: b.deletes.clone(),
            refresh: b.refresh.clone(),
            commit: b.commit.clone(),
            versions: b.versions.iter().map(WireVersion::of).collect(),
            syncs: b.syncs.as_ref().map(|s| WireSyncWrite {
                source_key: s.source_key.clone(),
                origins: s.origins.clone(),
            }),
        }
    }

    /// The batch again.
    pub fn batch(&self) -> Result<WriteBatch<'static>, String> {
        let upserts = self
            .upserts
            .iter()
            .map(|(r, h)| Ok((BatchDraft::Owned(Box::new(r.resource()?)), h.clone())))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(WriteBatch {
            base_revision: self.base_revision,
            upserts,
            deletes: self.deletes.clone(),
            refresh: self.refresh.clone(),
            commit: self.commit.clone(),
            versions: self
                .versions
                .iter()
                .map(WireVersion::record)
                .collect::<Result<_, _>>()?,
            syncs: self.syncs.as_ref().map(|s| SyncWrite {
                source_key: s.source_key.clone(),
                origins: s.origins.clone(),
            }),
            // The server records its authenticated caller, never a name the client sent.
            actor: None,
        })
    }
}

/// Who created and last changed some drafts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamps {
    /// One per draft found.
    pub stamps: Vec<DraftStamp>,
}

/// One version a publish writes (`None`: out of production).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePublished {
    /// The resource ID.
    pub id: String,
    /// The new production state.
    pub resource: Option<WireResource>,
}

/// `POST /tenants/{tenant}/publishes`: a publish record and its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    /// The log entry.
    pub record: PublishRecord,
    /// The versions.
    pub versions: Vec<WirePublished>,
}

impl Publish {
    /// The wire form of a publish.
    pub fn of(record: &PublishRecord, versions: &[PublishedVersion]) -> Publish {
        Publish {
            record: record.clone(),
            versions: versions
                .iter()
                .map(|v| WirePublished {
                    id: v.id.clone(),
                    resource: v.resource.as_ref().map(WireResource::of),
                })
                .collect(),
        }
    }

    /// The versions again.
    pub fn published(&self) -> Result<Vec<PublishedVersion>, String> {
        self.versions
            .iter()
            .map(|v| {
                Ok(PublishedVersion {
                    id: v.id.clone(),
                    resource: v
                        .resource
                        .as_ref()
                        .map(WireResource::resource)
                        .transpose()?,
                })
            })
            .collect()
    }
}

/// The publish log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publishes {
    /// The records.
    pub publishes: Vec<PublishRecord>,
}

/// The next publish number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Number {
    /// The number.
    pub number: u64,
}

/// One version pair of a publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WirePair {
    /// The resource ID.
    pub id: String,
    /// Production before.
    pub before: Option<WireResource>,
    /// Production after.
    pub after: Option<WireResource>,
}

/// The version pairs of one publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changes {
    /// The pairs.
    pub changes: Vec<WirePair>,
}

impl Changes {
    /// The wire form of version pairs.
    pub fn of(pairs: &[VersionPair]) -> Changes {
        Changes {
            changes: pairs
                .iter()
                .map(|p| WirePair {
                    id: p.id.clone(),
                    before: p.before.as_ref().map(WireResource::of),
                    after: p.after.as_ref().map(WireResource::of),
                })
                .collect(),
        }
    }

    /// The pairs again.
    pub fn pairs(&self) -> Result<Vec<VersionPair>, String> {
        self.changes
            .iter()
            .map(|p| {
                Ok(VersionPair {
                    id: p.id.clone(),
                    before: p.before.as_ref().map(WireResource::resource).transpose()?,
                    after: p.after.as_ref().map(WireResource::resource).transpose()?,
                })
            })
            .collect()
    }
}

/// `POST /users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    /// The user's name.
    pub name: String,
}

/// `PUT /grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGrant {
    /// The user.
    pub user: String,
    /// The tenant.
    pub tenant: String,
    /// The role.
    pub role: Role,
}

/// `POST /tokens`: a token by its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    /// blake3 of the token.
    pub hash: String,
    /// The user it acts as.
    pub user: String,
    /// Its current tenant.
    pub tenant: Option<String>,
    /// When it stops working, RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `POST /tokens/lookup`: a token hash (in the body, so it never lands in a request log).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenHash {
    /// blake3 of the token.
    pub hash: String,
}

/// The sync records of one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Syncs {
    /// `<instance>/<tenant>`.
    pub source_key: String,
    /// The records.
    pub records: Vec<SyncRecord>,
}

/// `GET /whoami`: the token's user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The user.
    pub user: String,
    /// The token's current tenant.
    pub tenant: Option<String>,
}

/// `GET /tenants/{t}/variables`: the names of the tenant's variables that
/// have a value, sorted. Never a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariableNames {
    /// The names.
    pub names: Vec<String>,
}

/// `PUT /tenants/{t}/variables/{name}`: the value, encrypted to the tenant
/// by the client (`ENC[age,…]`); the plain value never travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariableValue {
    /// The ciphertext.
    pub ciphertext: String,
}

/// The answer of `DELETE /tenants/{t}/variables/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unset {
    /// Whether the variable had a value.
    pub was_set: bool,
}

/// `DELETE /tenants/{t}`: delete the tenant as the client checked it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteTenant {
    /// The tenant revision the client checked it at (409 stale when it moved).
    pub revision: u64,
    /// Delete even though other tenants' resources came from it.
    #[serde(default)]
    pub force: bool,
}

/// `POST /tenants/{t}/plan`: a tree to plan on the server, sending only
/// what it lacks. A full plan lists every path and every unit's hash
/// (`domain::tree::unit_hash`); the server answers the paths it `needs`
/// (unknown units, or hashes that differ), and the next request carries
/// their bodies. A plan from git counted from `since` (the tenant's last
/// applied commit) lists only the paths changed since, with the bodies of
/// the units they belong to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanTree {
    /// A full plan: every regular file path of the tree.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// A full plan: `(unit path, unit hash)` of every unit.
    #[serde(default)]
    pub units: Vec<(String, String)>,
    /// A plan from git: the commit the changes are counted from.
    #[serde(default)]
    pub since: Option<String>,
    /// A plan from git: every path changed since `since` (added, modified, deleted).
    #[serde(default)]
    pub changed: Vec<String>,
    /// A plan from git: those of `changed` that the tree still has.
    #[serde(default)]
    pub present: Vec<String>,
    /// The file bodies sent, base64, by path.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The commit the tree was read from, recorded by the apply.
    #[serde(default)]
    pub commit: Option<String>,
    /// The tree's `tenant.toml`, as read by the client (a few settings, not a body).
    #[serde(default)]
    pub tenant_file: Option<TenantFile>,
    /// Delete what the tree no longer has.
    #[serde(default)]
    pub prune: bool,
}

/// A diagnostic on the wire (its code as text).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireDiagnostic {
    /// `error` or `warning`.
    pub severity: String,
    /// The file.
    pub file: String,
    /// The line.
    #[serde(default)]
    pub line: Option<u64>,
    /// The field.
    #[serde(default)]
    pub field: Option<String>,
    /// The code.
    pub code: String,
    /// The message.
    pub message: String,
    /// The hint.
    #[serde(default)]
    pub hint: Option<String>,
}

impl WireDiagnostic {
    /// The wire form of `d`.
    pub fn of(d: &Diagnostic) -> WireDiagnostic {
        WireDiagnostic {
            severity: if d.is_error() { "error" } else { "warning" }.to_string(),
            file: d.file.clone(),
            line: d.line,
            field: d.field.clone(),
            code: d.code.to_string(),
            message: d.message.clone(),
            hint: d.hint.clone(),
        }
    }

    /// The diagnostic again.
    pub fn diagnostic(&self) -> Diagnostic {
        let code = intern(&self.code);
        let mut d = if self.severity == "warning" {
            Diagnostic::warning(self.file.clone(), code, self.message.clone())
        } else {
            Diagnostic::error(self.file.clone(), code, self.message.clone())
        };
        d.line = self.line;
        d.field = self.field.clone();
        d.hint = self.hint.clone();
        d
    }
}

/// A diagnostic code as the `&'static str` the type holds. Codes are a
/// small fixed set, so each distinct one is kept once for the process.
fn intern(code: &str) -> &'static str {
    static CODES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut codes = CODES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = codes.get(code) {
        return known;
    }
    if codes.len() >= 1024 {
        return "remote";
    }
    let kept: &'static str = Box::leak(code.to_string().into_boxed_str());
    codes.insert(kept);
    kept
}

/// The answer of `POST /tenants/{t}/plan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanAnswer {
    /// The tenant revision the server saw.
    pub revision: u64,
    /// The paths whose bodies the server needs before it can plan (empty once planned).
    #[serde(default)]
    pub needs: Vec<String>,
    /// A plan from git that cannot be counted from `since` (the tenant was
    /// applied from another commit since, or drifted): send the full tree.
    #[serde(default)]
    pub full: bool,
    /// The plan with its payloads (a saved plan's shape), when the tree is valid.
    #[serde(default)]
    pub plan: Option<Value>,
    /// Every problem found.
    #[serde(default)]
    pub diagnostics: Vec<WireDiagnostic>,
    /// Units in the tree.
    #[serde(default)]
    pub units: usize,
    /// Units decoded by the server.
    #[serde(default)]
    pub parsed: usize,
    /// Units taken as unchanged without their bodies.
    #[serde(default)]
    pub unchanged: usize,
    /// The tree's tenant file, when it was sent.
    #[serde(default)]
    pub tenant_file: Option<TenantFile>,
    /// How many file bodies the server received for this plan.
    #[serde(default)]
    pub files_received: usize,
}

/// `POST /tenants/{t}/export`: the tenant's exported tree, without the
/// files the client holds already (by the blake3 of their bytes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportRequest {
    /// `(path, blake3 hex of its bytes)` of every file the client's folder holds.
    #[serde(default)]
    pub have: Vec<(String, String)>,
}

/// The answer of `POST /tenants/{t}/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportAnswer {
    /// The tenant revision exported.
    pub revision: u64,
    /// Every path of the exported tree (the client removes the others).
    pub paths: Vec<String>,
    /// The bodies of the files the client does not hold as they are, base64, by path.
    pub files: BTreeMap<String, String>,
    /// Plain-text credentials scrubbed from the tree.
    pub scrubbed: usize,
}
