//! The remote store: the store contract over HTTP to a `ferry serve`.
//!
//! A `http(s)://HOST[:PORT]` store URL opens a [`RemoteStore`], which
//! implements the four store traits by calling ferry's own API
//! (`/api/ferry/v1/…`, bodies in [`wire`]) with a bearer token. The server
//! holds the real store, checks the token and the role each call needs with
//! the same `domain::access` rules, and writes through its one write
//! connection, so every use case and every command runs unchanged against
//! it. [`RemoteStore::open`] asks the server who the token belongs to
//! (`GET /whoami`); the CLI acts as that user, so the services' own role
//! checks agree with the server's.
//!
//! Every request has connect, read and write timeouts; only GETs are
//! retried (a few times, on a transport failure or a 502/503/504), and
//! a bodiless DELETE once more on a fresh connection when a pooled one
//! turns out closed (ureq's own rule for idempotent requests). The
//! server's error shape `{"error": {code, message, hint}}` becomes a
//! [`StoreError`]: `stale`, `tenant_not_found`, `tenant_exists`, `busy` and
//! `refused` the same variants a local store gives, anything else
//! [`StoreError::Remote`] with the server's message and hint. A server that
//! cannot be reached is [`StoreError::Unreachable`], naming the URL.

pub mod wire;

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{
    AccessStore, DraftStamp, PublishStore, ResourceStore, SessionRecord, StoreError, SyncRecord,
    SyncStore, TenantAdmin, TenantRecord, TokenRecord, VersionRecord, WriteBatch,
};
use crate::domain::access::{AccessState, Role, UserRecord};
use crate::domain::model::Resource;
use crate::domain::plan::Absent;
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::secrets::KeyPair;
use crate::domain::state::Index;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for an answer (a big write or export may take a while).
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How many times a GET is tried.
const GET_ATTEMPTS: u32 = 3;
/// The largest answer accepted, in bytes.
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// Whether `url` names a remote store (`http://` or `https://`).
pub fn is_remote_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A store behind a `ferry serve`, reached over HTTP.
pub struct RemoteStore {
    /// `scheme://host:port`, no trailing slash.
    base: String,
    /// The bearer token (never printed).
    token: String,
    agent: ureq::Agent,
    /// Who the token belongs to, as the server said.
    whoami: wire::WhoAmI,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .field("user", &self.whoami.user)
            .finish()
    }
}

/// The base of a remote store URL, or why it is not one.
fn base_of(url: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::Remote {
        status: 0,
        code: "bad_url".into(),
        message: format!("remote store URL `{url}` {why}"),
        hint: Some("write it as `http(s)://HOST[:PORT]`, e.g. `https://ferry.example.com`".into()),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("does not parse: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(StoreError::Remote {
            status: 0,
            code: "bad_url".into(),
            message: "a remote store URL may not hold credentials".into(),
            hint: Some("give the token in FERRY_TOKEN or with --token-file PATH".into()),
        });
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || parsed.path() != "/" {
        return Err(bad("may hold only a scheme, a host and a port"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(bad("has no host"));
    };
    Ok(match parsed.port() {
        Some(p) => format!("{}://{host}:{p}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

/// `s` as one path segment.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A server answer that is not what the API promises.
fn garbled(what: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Remote {
        status: 0,
        code: "bad_answer".into(),
        message: format!("the ferry server's answer to {what} does not decode: {reason}"),
        hint: Some(
            "the server may run another ferry version; compare `ferry --version` on both sides"
                .into(),
        ),
    }
}

/// The store error an error answer of the server stands for.
pub fn answer_error(status: u16, body: &Value) -> StoreError {
    let err = &body["error"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let code = text(&err["code"]).unwrap_or_else(|| "error".into());
    let message =
        text(&err["message"]).unwrap_or_else(|| format!("the ferry server answered HTTP {status}"));
    let tenant = text(&body["tenant"]);
    match (code.as_str(), tenant) {
        ("stale", Some(tenant)) => {
            if let (Some(planned), Some(actual)) =
                (body["planned"].as_u64(), body["actual"].as_u64())
            {
                return StoreError::Stale {
                    tenant,
                    planned,
                    actual,
                };
            }
        }
        ("tenant_not_found", Some(tenant)) => return StoreError::NoTenant { tenant },
        ("tenant_exists", Some(tenant)) => return StoreError::TenantExists { tenant },
        ("busy", Some(tenant)) => return StoreError::Busy { tenant },
        ("refused", _) if status == 409 => return StoreError::Refused { message },
        ("token_not_found", _) if status == 404 => {
            if let Some(id) = text(&body["id"]) {
                return StoreError::NoToken { id };
            }
        }
        _ => {}
    }
    let hint = if status == 401 {
        Some("set FERRY_TOKEN (or pass --token-file PATH) to a token of this server, made with `ferry token create --user USER`".into())
    } else {
        text(&err["hint"])
    };
    StoreError::Remote {
        status,
        code,
        message,
        hint,
    }
}

impl RemoteStore {
    /// Open the store at `url` with `token`, asking the server whose token it is.
    pub fn open(url: &str, token: Option<&str>) -> Result<RemoteStore, StoreError> {
        let base = base_of(url)?;
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(StoreError::Remote {
                status: 401,
                code: "no_token".into(),
                message: format!("no token for the ferry server at {base}"),
                hint: Some("set FERRY_TOKEN or pass --token-file PATH (a token made with `ferry token create --user USER` on the server's store)".into()),
            });
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            .redirects(0)
            .build();
        let mut store = RemoteStore {
            base,
            token: token.to_string(),
            agent,
            whoami: wire::WhoAmI {
                user: String::new(),
                tenant: None,
            },
        };
        store.whoami = store.get("/whoami")?;
        Ok(store)
    }

    /// The user the token acts as.
    pub fn user(&self) -> &str {
        &self.whoami.user
    }

    /// `scheme://host:port` of the server.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Have the server plan a tree of `tenant` from what it is sent
    /// (`POST /tenants/{t}/plan`, [`wire::PlanTree`]); a read, so a viewer may.
    pub fn plan_tree(
        &self,
        tenant: &str,
        request: &wire::PlanTree,
    ) -> Result<wire::PlanAnswer, StoreError> {
        self.send("POST", &Self::tenant_path(tenant, "/plan"), request)
    }

    /// The tenant's exported tree, without the files the client holds
    /// already (`POST /tenants/{t}/export`, [`wire::ExportRequest`]).
    pub fn export_tree(
        &self,
        tenant: &str,
        request: &wire::ExportRequest,
    ) -> Result<wire::ExportAnswer, StoreError> {
        self.send("POST", &Self::tenant_path(tenant, "/export"), request)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{}{path}", self.base, wire::PREFIX))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Accept", "application/json")
    }

    /// Read an answer: the decoded body of a 2xx, the mapped error of anything else.
    fn answer<T: DeserializeOwned>(
        &self,
        what: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, StoreError> {
        let (ok, status, response) = match result {
            Ok(r) => (true, r.status(), r),
            Err(ureq::Error::Status(code, r)) => (false, code, r),
            Err(ureq::Error::Transport(t)) => {
                return Err(StoreError::Unreachable {
                    url: self.base.clone(),
                    reason: t.to_string(),
                })
            }
        };
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::Unreachable {
                url: self.base.clone(),
                reason: format!("the answer to {what} broke off: {e}"),
            })?;
        if !ok {
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(answer_error(status, &body));
        }
        serde_json::from_slice(&bytes).map_err(|e| garbled(what, e))
    }

    /// `GET path`, tried again on a transport failure or a 502/503/504.
    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.request("GET", path).call();
            let again = match &result {
                Err(ureq::Error::Transport(_)) => true,
                Err(ureq::Error::Status(code, _)) => matches!(code, 502..=504),
                Ok(_) => false,
            };
            if !again || attempt >= GET_ATTEMPTS {
                return self.answer(&format!("GET {path}"), result);
            }
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt * attempt)));
        }
    }

    /// `METHOD path` with a JSON body; never repeated.
    fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, StoreError> {
        let bytes = serde_json::to_vec(body).map_err(|e| garbled("a request", e))?;
        let result = self
            .request(method, path)
            .set("Content-Type", "application/json")
            .send_bytes(&bytes);
        self.answer(&format!("{method} {path}"), result)
    }

    /// `POST path` without a body, for an operation the API gives none. A
    /// body the server does not read is left on the connection, and hyper
    /// closes that connection after answering, under the client's next
    /// request on it.
    fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, StoreError> {
        let result = self.request("POST", path).call();
        self.answer(&format!("POST {path}"), result)
    }

    /// `DELETE path` without a body: idempotent, so a pooled connection
    /// the server had closed is retried on a fresh one (a request with a
    /// body is not).
    fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, StoreError> {
        let result = self.request("DELETE", path).call();
        self.answer(&format!("DELETE {path}"), result)
    }

    fn tenant_path(tenant: &str, rest: &str) -> String {
        format!("/tenants/{}{rest}", seg(tenant))
    }

    fn ids_lookup(
        &self,
        tenant: &str,
        rest: &str,
        ids: &[String],
    ) -> Result<Vec<Resource>, StoreError> {
        let path = Self::tenant_path(tenant, rest);
        let answer: wire::Resources = self.send("POST", &path, &wire::Ids { ids: ids.to_vec() })?;
        wire::resources(&answer.resources).map_err(|e| garbled(&path, e))
    }

    fn all(&self, tenant: &str, rest: &str) -> Result<Vec<Resource>, StoreError> {
        let path = Self::tenant_path(tenant, rest);
        let answer: wire::Resources = self.get(&path)?;
        wire::resources(&answer.resources).map_err(|e| garbled(&path, e))
    }
}

impl ResourceStore for RemoteStore {
    fn tenant_admin(&self) -> Option<&dyn TenantAdmin> {
        Some(self)
    }

    fn tenant_admin_mut(&mut self) -> Option<&mut dyn TenantAdmin> {
        Some(self)
    }

    fn remote(&self) -> Option<&RemoteStore> {
        Some(self)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.get::<wire::Revision>("/revision")?.revision)
    }

    fn create_tenant(
        &mut self,
        name: &str,
        environment: Option<&str>,
        keys: &KeyPair,
    ) -> Result<TenantRecord, StoreError> {
        let body = wire::NewTenant {
            name: name.to_string(),
            environment: environment.map(str::to_string),
            recipient: keys.recipient.clone(),
            identity: keys.identity.clone(),
        };
        self.send("POST", "/tenants", &body)
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.get("/tenants")
    }

    fn tenant(&self, name: &str) -> Result<TenantRecord, StoreError> {
        self.get(&Self::tenant_path(name, ""))
    }

    fn identity(&self, tenant: &str) -> Result<String, StoreError> {
        Ok(self
            .get::<wire::Identity>(&Self::tenant_path(tenant, "/identity"))?
            .identity)
    }

    fn index(&self, tenant: &str) -> Result<(u64, Index), StoreError> {
        let answer: wire::IndexBody = self.get(&Self::tenant_path(tenant, "/index"))?;
        Ok((answer.revision, Index::new(answer.entries)))
    }

    fn drafts(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.ids_lookup(tenant, "/drafts/lookup", ids)
    }

    fn all_drafts(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        self.all(tenant, "/drafts")
    }

    fn draft_stamps(&self, tenant: &str, ids: &[String]) -> Result<Vec<DraftStamp>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = Self::tenant_path(tenant, "/drafts/stamps");
        let answer: wire::Stamps = self.send("POST", &path, &wire::Ids { ids: ids.to_vec() })?;
        Ok(answer.stamps)
    }

    fn write(&mut self, tenant: &str, batch: &WriteBatch<'_>) -> Result<u64, StoreError> {
        let answer: wire::Revision = self.send(
            "POST",
            &Self::tenant_path(tenant, "/write"),
            &wire::Batch::of(batch),
        )?;
        Ok(answer.revision)
    }
}

/// Variables travel only as names (out) and ciphertext (in); the server
/// checks the role of each call, and a tenant deletion the revision and,
/// unless forced, the dependants again.
impl TenantAdmin for RemoteStore {
    fn variable_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let path = Self::tenant_path(tenant, "/variables");
        Ok(self.get::<wire::VariableNames>(&path)?.names)
    }

    fn set_variable(
        &mut self,
        tenant: &str,
        name: &str,
        ciphertext: &str,
    ) -> Result<(), StoreError> {
        let path = Self::tenant_path(tenant, &format!("/variables/{}", seg(name)));
        let body = wire::VariableValue {
            ciphertext: ciphertext.to_string(),
        };
        let _: Value = self.send("PUT", &path, &body)?;
        Ok(())
    }

    fn unset_variable(&mut self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let path = Self::tenant_path(tenant, &format!("/variables/{}", seg(name)));
        Ok(self.delete::<wire::Unset>(&path)?.was_set)
    }

    /// Deleted as the tenant is now, with the dependants checked by the server.
    fn delete_tenant(&mut self, tenant: &str) -> Result<(), StoreError> {
        let revision = self.tenant(tenant)?.revision;
        self.delete_checked(tenant, revision, false)
    }

    fn delete_checked(
        &mut self,
        tenant: &str,
        revision: u64,
        force: bool,
    ) -> Result<(), StoreError> {
        let body = wire::DeleteTenant { revision, force };
        let _: Value = self.send("DELETE", &Self::tenant_path(tenant, ""), &body)?;
        Ok(())
    }
}

impl PublishStore for RemoteStore {
    fn versions(&self, tenant: &str, ids: &[String]) -> Result<Vec<VersionRecord>, StoreError> {
        let path = Self::tenant_path(tenant, "/versions/lookup");
        let answer: wire::Versions = self.send("POST", &path, &wire::Ids { ids: ids.to_vec() })?;
        wire::version_records(&answer).map_err(|e| garbled(&path, e))
    }

    fn put_versions(&mut self, tenant: &str, versions: &[VersionRecord]) -> Result<(), StoreError> {
        let path = Self::tenant_path(tenant, "/versions");
        let _: Value = self.send("PUT", &path, &wire::wire_versions(versions))?;
        Ok(())
    }

    fn production(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        self.all(tenant, "/production")
    }

    fn production_of(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.ids_lookup(tenant, "/production/lookup", ids)
    }

    fn publish(
        &mut self,
        tenant: &str,
        record: &PublishRecord,
        versions: &[PublishedVersion],
    ) -> Result<(), StoreError> {
        let path = Self::tenant_path(tenant, "/publishes");
        let _: Value = self.send("POST", &path, &wire::Publish::of(record, versions))?;
        Ok(())
    }

    fn publishes(&self, tenant: &str) -> Result<Vec<PublishRecord>, StoreError> {
        Ok(self
            .get::<wire::Publishes>(&Self::tenant_path(tenant, "/publishes"))?
            .publishes)
    }

    fn next_publish_number(&self, tenant: &str) -> Result<u64, StoreError> {
        Ok(self
            .get::<wire::Number>(&Self::tenant_path(tenant, "/publishes/next"))?
            .number)
    }

    fn publish_changes(
        &self,
        tenant: &str,
        change_track_id: &str,
    ) -> Result<Vec<VersionPair>, StoreError> {
        let path = Self::tenant_path(
            tenant,
            &format!("/publishes/{}/changes", seg(change_track_id)),
        );
        let answer: wire::Changes = self.get(&path)?;
        answer.pairs().map_err(|e| garbled(&path, e))
    }

    fn drift(&self, tenant: &str) -> Result<Vec<Absent>, StoreError> {
        self.get(&Self::tenant_path(tenant, "/drift"))
    }
}

impl AccessStore for RemoteStore {
    fn access(&self) -> Result<AccessState, StoreError> {
        self.get("/access")
    }

    fn add_user(&mut self, name: &str) -> Result<UserRecord, StoreError> {
        self.send(
            "POST",
            "/users",
            &wire::NewUser {
                name: name.to_string(),
            },
        )
    }

    fn grant(&mut self, user: &str, tenant: &str, role: Role) -> Result<(), StoreError> {
        let body = wire::NewGrant {
            user: user.to_string(),
            tenant: tenant.to_string(),
            role,
        };
        let _: Value = self.send("PUT", "/grants", &body)?;
        Ok(())
    }

    fn add_token(
        &mut self,
        hash: &str,
        user: &str,
        tenant: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<TokenRecord, StoreError> {
        let body = wire::NewToken {
            hash: hash.to_string(),
            user: user.to_string(),
            tenant: tenant.map(str::to_string),
            expires_at: expires_at.map(str::to_string),
        };
        self.send("POST", "/tokens", &body)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let body = wire::TokenHash {
            hash: hash.to_string(),
        };
        self.send("POST", "/tokens/lookup", &body)
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.get("/tokens")
    }

    /// Revoked at the server's time, not `at`: the server is the authority.
    fn revoke_token(&mut self, id: &str, _at: &str) -> Result<TokenRecord, StoreError> {
        self.post_empty(&format!("/tokens/{}/revoke", seg(id)))
    }

    /// The server records each token's use itself as its requests arrive;
    /// a client has nothing to record.
    fn touch_token(
        &mut self,
        _hash: &str,
        _at: &str,
        _not_before: &str,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Web UI sessions live in the store of the server that serves the UI;
    /// a `ferry serve` over a remote store has no UI sessions of its own.
    fn add_session(&mut self, _session: &SessionRecord) -> Result<(), StoreError> {
        Err(StoreError::Refused {
            message: "web UI sessions need a SQLite or PostgreSQL store; open the UI of the server this remote store points at".into(),
        })
    }

    fn session(&self, _hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(None)
    }

    fn remove_session(&mut self, _hash: &str, _now: i64) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl SyncStore for RemoteStore {
    fn sync_records(&self, tenant: &str, source_key: &str) -> Result<Vec<SyncRecord>, StoreError> {
        let path = Self::tenant_path(tenant, &format!("/syncs?source={}", seg(source_key)));
        Ok(self.get::<wire::Syncs>(&path)?.records)
    }

    fn record_syncs(
        &mut self,
        tenant: &str,
        source_key: &str,
        records: &[SyncRecord],
    ) -> Result<(), StoreError> {
        let body = wire::Syncs {
            source_key: source_key.to_string(),
            records: records.to_vec(),
        };
        let _: Value = self.send("POST", &Self::tenant_path(tenant, "/syncs"), &body)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_hold_only_scheme_host_and_port() {
        assert_eq!(
            base_of("http://127.0.0.1:7070").unwrap(),
            "http://127.0.0.1:7070"
        );
        assert_eq!(
            base_of("https://ferry.example.com/").unwrap(),
            "https://ferry.example.com"
        );
        for bad in [
            "http://u:p@host",
            "http://host/api",
            "http://host?x=1",
            "ftp://host",
        ] {
            assert!(base_of(bad).is_err(), "{bad}");
        }
        let e = base_of("http://u:secret@host").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn error_answers_become_the_store_errors_a_local_store_gives() {
        let stale = serde_json::json!({"error": {"code": "stale", "message": "m"}, "tenant": "t", "planned": 3, "actual": 5});
        assert!(matches!(
            answer_error(409, &stale),
            StoreError::Stale {
                planned: 3,
                actual: 5,
                ..
            }
        ));
        let gone = serde_json::json!({"error": {"code": "tenant_not_found", "message": "m"}, "tenant": "t"});
        assert!(matches!(
            answer_error(404, &gone),
            StoreError::NoTenant { .. }
        ));
        let forbidden = serde_json::json!({"error": {"code": "forbidden", "message": "applying needs the editor role", "hint": "an owner runs x"}});
        let e = answer_error(403, &forbidden).to_string();
        assert!(
            e.contains("needs the editor role") && e.contains("\nhint: an owner runs x"),
            "{e}"
        );
    }
}
