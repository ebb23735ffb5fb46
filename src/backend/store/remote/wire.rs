//! The bodies of ferry's own API (`/api/ferry/v1/…`): what the remote store
//! sends and `ferry serve` answers, one type per request or answer.
//!
//! A resource travels in stored form as its canonical JSON document plus
//! its content as base64 ([`WireResource`]), exactly what a saved plan
//! holds, so both ends rebuild the same [`Resource`] and the same content
//! hash. Both the client (`remote/mod.rs`) and the server
//! (`server/ferry_api.rs`) use these types, so the two cannot disagree.

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::store::{SyncRecord, SyncWrite, VersionRecord, WriteBatch};
use crate::domain::access::Role;
use crate::domain::model::Resource;
use crate::domain::plan::{resource_from_document, HashRefresh};
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::state::{canonical_json, IndexEntry};

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
            .map(|(r, h)| Ok((Cow::Owned(r.resource()?), h.clone())))
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
        })
    }
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
