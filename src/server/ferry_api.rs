//! ferry's own API, `/api/ferry/v1/…`: the store contract over HTTP, for
//! the remote store (`backend/store/remote`) that lets every CLI command run
//! against this server.
//!
//! One endpoint per store operation the use cases need; bodies are the
//! types of `backend::store::remote::wire`. Each endpoint authenticates the
//! bearer token, then checks the role the operation needs with the same
//! `domain::access` rules the services use (reads: viewer of the tenant;
//! draft writes and sync records: editor; published versions, publishes and
//! the tenant's private key: admin; users, tokens of other users, token
//! lookups and new tenants: a store owner; grants: an owner of the tenant;
//! token lists and revocations: as `service::access` allows)
//! before it touches the store, so a refusal changes nothing. Reads run on
//! a reader connection in one snapshot; writes go through the one write
//! connection. A body is read only after its caller is admitted. Error answers carry the fields a client needs to rebuild the
//! store error (`tenant`, and `planned`/`actual` for a stale write).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{authenticate, Caller};
use super::error::ApiError;
use super::openapi::Registry;
use super::{read_store, with_store, Shared};
use crate::backend::store::remote::wire;
use crate::backend::store::{Store, StoreError, TenantRecord, TokenRecord};
use crate::domain::access::Role;
use crate::domain::secrets::KeyPair;
use crate::service::pipeline::PipelineError;
use crate::service::remote_export;
use crate::service::remote_plan::{self, RemotePlanError};
use crate::service::tenants::{self, TenantError};
use crate::service::vars::{self, VarsError};

/// What an operation needs of its caller.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Any known token.
    Token,
    /// At least this role on the path's tenant, for this action.
    Role(Role, &'static str),
    /// A store owner, for this action.
    Owner(&'static str),
}

/// The caller, if they have what `need` asks on `tenant`.
fn admit(
    store: &dyn Store,
    headers: &HeaderMap,
    tenant: Option<&str>,
    need: Need,
) -> Result<Caller, ApiError> {
    let caller = authenticate(store, headers)?;
    match (need, tenant) {
        (Need::Token, _) => {}
        (Need::Role(role, action), Some(t)) => caller.require(t, role, action)?,
        (Need::Role(..), None) => return Err(ApiError::internal("a tenant role without a tenant")),
        (Need::Owner(action), _) => caller.access.require_owner(Some(&caller.user), action)?,
    }
    Ok(caller)
}

/// A store error as an answer, with the fields the remote store rebuilds it from.
fn refusal(e: StoreError) -> ApiError {
    let extra = match &e {
        StoreError::Stale {
            tenant,
            planned,
            actual,
        } => Some((tenant.clone(), Some((*planned, *actual)))),
        StoreError::NoTenant { tenant }
        | StoreError::TenantExists { tenant }
        | StoreError::Busy { tenant } => Some((tenant.clone(), None)),
        _ => None,
    };
    let mut answer = ApiError::from(e);
    if let Some((tenant, revisions)) = extra {
        answer = answer.with("tenant", tenant.into());
        if let Some((planned, actual)) = revisions {
            answer = answer
                .with("planned", planned.into())
                .with("actual", actual.into());
        }
    }
    answer
}

/// What kind of JSON value `v` is, for a message.
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn bad_body(reason: String) -> ApiError {
    ApiError::bad_request(
        "bad_body",
        format!("the request body does not decode: {reason}"),
    )
}

/// Why an operation failed: the store (answered with [`refusal`]) or the request.
enum Fault {
    Store(StoreError),
    Api(ApiError),
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Fault {
        Fault::Store(e)
    }
}

impl From<ApiError> for Fault {
    fn from(e: ApiError) -> Fault {
        Fault::Api(e)
    }
}

impl From<tenants::NewTenantError> for Fault {
    fn from(e: tenants::NewTenantError) -> Fault {
        match e {
            tenants::NewTenantError::Store(e) => Fault::Store(e),
            refused => Fault::Api(refused.into()),
        }
    }
}

impl From<crate::domain::access::AccessError> for Fault {
    fn from(e: crate::domain::access::AccessError) -> Fault {
        Fault::Api(e.into())
    }
}

fn answer<T>(r: Result<T, Fault>) -> Result<T, ApiError> {
    r.map_err(|f| match f {
        Fault::Store(e) => refusal(e),
        Fault::Api(e) => e,
    })
}

/// The JSON body of a request, read only once its caller is admitted (so a
/// refused caller learns nothing from the body's shape). Numbers are read
/// as JSON means them: where a whole number is due, `2.0` is the number 2
/// (a body that does not read as it is is read again with its whole-valued
/// floats as integers, so ferry's own client's bodies are read untouched).
/// A whole number above [`MAX_NUMBER`] (which not every JSON reader holds
/// exactly) in any field the body is read into is refused.
fn parse<T: serde::de::DeserializeOwned + Serialize>(body: &[u8]) -> Result<T, Fault> {
    let bad = |e: serde_json::Error| Fault::Api(bad_body(e.to_string()));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    // Every body of the store contract is an object; serde would also read
    // a struct from an array, by position, which the document does not allow.
    if !value.is_object() {
        return Err(Fault::Api(bad_body(format!(
            "it is {}, not a JSON object",
            json_type(&value)
        ))));
    }
    let parsed: T = match T::deserialize(&value) {
        Ok(parsed) => parsed,
        Err(first) => {
            if !whole_numbers(&mut value) {
                return Err(bad(first));
            }
            serde_json::from_value(value).map_err(bad)?
        }
    };
    let read = serde_json::to_value(&parsed).map_err(bad)?;
    match beyond_max(&read) {
        Some(n) => Err(Fault::Api(bad_body(format!(
            "the number {n} is beyond ±{MAX_NUMBER}"
        )))),
        None => Ok(parsed),
    }
}

/// The largest whole number a body may hold: 2^53 - 1, exact in every JSON reader.
pub const MAX_NUMBER: u64 = (1 << 53) - 1;

/// Rewrite every whole-valued float of `value` within ±[`MAX_NUMBER`]
/// (`2.0`) as the integer it is; whether any was rewritten.
fn whole_numbers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_NUMBER as f64 => {
                // Exact: a whole float within 2^53 converts without loss.
                *n = serde_json::Number::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| whole_numbers(v) | any),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |any, v| whole_numbers(v) | any),
        _ => false,
    }
}

/// The first whole number of `value` beyond ±[`MAX_NUMBER`], if any.
fn beyond_max(value: &serde_json::Value) -> Option<&serde_json::Number> {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            let big = n.as_u64().is_some_and(|u| u > MAX_NUMBER)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() > MAX_NUMBER);
            big.then_some(n)
        }
        Value::Array(items) => items.iter().find_map(beyond_max),
        Value::Object(fields) => fields.values().find_map(beyond_max),
        _ => None,
    }
}

/// Answer a read on a reader connection, after admitting the caller.
async fn read<T, F>(
    state: &Shared,
    headers: HeaderMap,
    tenant: Option<String>,
    need: Need,
    work: F,
) -> Result<Json<T>, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn Store, &Caller) -> Result<T, Fault> + Send + 'static,
{
    read_store(state, move |store| {
        let caller = admit(store, &headers, tenant.as_deref(), need)?;
        answer(work(store, &caller))
    })
    .await
    .map(Json)
}

/// Answer a write on the write connection, after admitting the caller.
async fn write<T, F>(
    state: &Shared,
    headers: HeaderMap,
    tenant: Option<String>,
    need: Need,
    work: F,
) -> Result<Json<T>, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&mut dyn Store, &Caller) -> Result<T, Fault> + Send + 'static,
{
    with_store(state, move |store| {
        let caller = admit(&*store, &headers, tenant.as_deref(), need)?;
        answer(work(store, &caller))
    })
    .await
    .map(Json)
}

/// Answer a read of the path's tenant, for a viewer of it.
async fn view<T, F>(
    state: &Shared,
    headers: HeaderMap,
    tenant: String,
    work: F,
) -> Result<Json<T>, ApiError>
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn Store, &str) -> Result<T, Fault> + Send + 'static,
{
    let need = Need::Role(Role::Viewer, "reading the tenant");
    read(
        state,
        headers,
        Some(tenant.clone()),
        need,
        move |store, _| work(store, &tenant),
    )
    .await
}

async fn whoami(State(s): State<Shared>, h: HeaderMap) -> Result<Json<wire::WhoAmI>, ApiError> {
    read(&s, h, None, Need::Token, |_, c| {
        Ok(wire::WhoAmI {
            user: c.user.clone(),
            tenant: c.tenant.clone(),
        })
    })
    .await
}

async fn revision(State(s): State<Shared>, h: HeaderMap) -> Result<Json<wire::Revision>, ApiError> {
    read(&s, h, None, Need::Token, |store, _| {
        Ok(wire::Revision {
            revision: store.revision()?,
        })
    })
    .await
}

async fn tenants(
    State(s): State<Shared>,
    h: HeaderMap,
) -> Result<Json<Vec<TenantRecord>>, ApiError> {
    read(&s, h, None, Need::Token, |store, c| {
        Ok(store
            .tenants()?
            .into_iter()
            .filter(|t| c.access.role(&c.user, &t.name).is_some())
            .collect())
    })
    .await
}

async fn create_tenant(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<TenantRecord>, ApiError> {
    write(
        &s,
        h,
        None,
        Need::Owner("creating tenants"),
        move |store, caller| {
            let body: wire::NewTenant = parse(&body)?;
            let keys = KeyPair {
                identity: body.identity,
                recipient: body.recipient,
            };
            Ok(tenants::create(
                store,
                &caller.actor(),
                &body.name,
                body.environment.as_deref(),
                &keys,
            )?)
        },
    )
    .await
}

async fn tenant(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<TenantRecord>, ApiError> {
    view(&s, h, t, |store, t| Ok(store.tenant(t)?)).await
}

async fn identity(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::Identity>, ApiError> {
    let need = Need::Role(Role::Admin, "reading the tenant's private key");
    read(&s, h, Some(t.clone()), need, move |store, _| {
        Ok(wire::Identity {
            identity: store.identity(&t)?,
        })
    })
    .await
}

async fn index(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::IndexBody>, ApiError> {
    view(&s, h, t, |store, t| {
        let (revision, index) = store.index(t)?;
        Ok(wire::IndexBody {
            revision,
            entries: index.entries().to_vec(),
        })
    })
    .await
}

async fn all_drafts(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::Resources>, ApiError> {
    view(&s, h, t, |store, t| {
        Ok(wire::Resources::of(&store.all_drafts(t)?))
    })
    .await
}

async fn drafts(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Resources>, ApiError> {
    view(&s, h, t, move |store, t| {
        let ids: wire::Ids = parse(&body)?;
        Ok(wire::Resources::of(&store.drafts(t, &ids.ids)?))
    })
    .await
}

async fn draft_stamps(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Stamps>, ApiError> {
    view(&s, h, t, move |store, t| {
        let ids: wire::Ids = parse(&body)?;
        Ok(wire::Stamps {
            stamps: store.draft_stamps(t, &ids.ids)?,
        })
    })
    .await
}

async fn write_batch(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Revision>, ApiError> {
    let need = Need::Role(Role::Editor, "applying");
    write(&s, h, Some(t.clone()), need, move |store, caller| {
        let body: wire::Batch = parse(&body)?;
        // A batch carrying published versions is a promotion's: admin, as promotion needs.
        if !body.versions.is_empty() {
            caller.require(&t, Role::Admin, "promoting")?;
        }
        let mut batch = body.batch().map_err(bad_body)?;
        batch.actor = Some(caller.user.clone());
        Ok(wire::Revision {
            revision: store.write(&t, &batch)?,
        })
    })
    .await
}

async fn versions(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Versions>, ApiError> {
    view(&s, h, t, move |store, t| {
        let ids: wire::Ids = parse(&body)?;
        Ok(wire::wire_versions(&store.versions(t, &ids.ids)?))
    })
    .await
}

async fn put_versions(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let need = Need::Role(Role::Admin, "recording published versions");
    write(&s, h, Some(t.clone()), need, move |store, _| {
        let body: wire::Versions = parse(&body)?;
        let versions = wire::version_records(&body).map_err(bad_body)?;
        store.put_versions(&t, &versions)?;
        Ok(serde_json::json!({}))
    })
    .await
}

async fn production(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::Resources>, ApiError> {
    view(&s, h, t, |store, t| {
        Ok(wire::Resources::of(&store.production(t)?))
    })
    .await
}

async fn production_of(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::Resources>, ApiError> {
    view(&s, h, t, move |store, t| {
        let ids: wire::Ids = parse(&body)?;
        Ok(wire::Resources::of(&store.production_of(t, &ids.ids)?))
    })
    .await
}

async fn publish(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let need = Need::Role(Role::Admin, "publishing");
    write(&s, h, Some(t.clone()), need, move |store, _| {
        let body: wire::Publish = parse(&body)?;
        let versions = body.published().map_err(bad_body)?;
        store.publish(&t, &body.record, &versions)?;
        Ok(serde_json::json!({}))
    })
    .await
}

async fn publishes(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::Publishes>, ApiError> {
    view(&s, h, t, |store, t| {
        Ok(wire::Publishes {
            publishes: store.publishes(t)?,
        })
    })
    .await
}

async fn next_publish(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::Number>, ApiError> {
    view(&s, h, t, |store, t| {
        Ok(wire::Number {
            number: store.next_publish_number(t)?,
        })
    })
    .await
}

async fn publish_changes(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((t, change)): Path<(String, String)>,
) -> Result<Json<wire::Changes>, ApiError> {
    view(&s, h, t, move |store, t| {
        Ok(wire::Changes::of(&store.publish_changes(t, &change)?))
    })
    .await
}

async fn drift(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<Vec<crate::domain::plan::Absent>>, ApiError> {
    view(&s, h, t, |store, t| Ok(store.drift(t)?)).await
}

async fn access(
    State(s): State<Shared>,
    h: HeaderMap,
) -> Result<Json<crate::domain::access::AccessState>, ApiError> {
    read(&s, h, None, Need::Token, |store, _| Ok(store.access()?)).await
}

async fn add_user(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<crate::domain::access::UserRecord>, ApiError> {
    write(&s, h, None, Need::Owner("adding users"), move |store, _| {
        let body: wire::NewUser = parse(&body)?;
        if !crate::domain::model::is_valid_name(&body.name) {
            let message = format!(
                "user name `{}` must be lower-case letters, digits, `-`, `_` or `.`",
                body.name
            );
            return Err(ApiError::bad_request("bad_name", message).into());
        }
        Ok(store.add_user(&body.name)?)
    })
    .await
}

async fn grant(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    write(&s, h, None, Need::Token, move |store, caller| {
        let body: wire::NewGrant = parse(&body)?;
        caller.require(&body.tenant, Role::Owner, "granting roles")?;
        store.grant(&body.user, &body.tenant, body.role)?;
        Ok(serde_json::json!({}))
    })
    .await
}

async fn add_token(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenRecord>, ApiError> {
    write(&s, h, None, Need::Token, move |store, caller| {
        let body: wire::NewToken = parse(&body)?;
        check_new_token(&body)?;
        if caller.user != body.user {
            caller
                .access
                .require_owner(Some(&caller.user), "making tokens for other users")?;
        }
        let (tenant, expires) = (body.tenant.as_deref(), body.expires_at.as_deref());
        Ok(store.add_token(&body.hash, &body.user, tenant, expires)?)
    })
    .await
}

/// A token's expiry as the store keeps it: RFC 3339 UTC to the second,
/// which the store compares as text.
fn check_new_token(body: &wire::NewToken) -> Result<(), ApiError> {
    match body.expires_at.as_deref() {
        Some(at) if !crate::domain::access::is_utc_second(at) => Err(ApiError::bad_request(
            "bad_expiry",
            format!(
                "`expires_at` `{at}` must be RFC 3339 UTC to the second, e.g. 2027-01-31T12:00:00Z"
            ),
        )),
        _ => Ok(()),
    }
}

async fn token(
    State(s): State<Shared>,
    h: HeaderMap,
    body: Bytes,
) -> Result<Json<Option<TokenRecord>>, ApiError> {
    let need = Need::Owner("looking up tokens");
    read(&s, h, None, need, move |store, _| {
        let body: wire::TokenHash = parse(&body)?;
        Ok(store.token(&body.hash)?)
    })
    .await
}

async fn tokens(State(s): State<Shared>, h: HeaderMap) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    read(&s, h, None, Need::Token, |store, c| {
        Ok(store
            .tokens()?
            .into_iter()
            .filter(|t| {
                c.access
                    .may_manage_token(Some(&c.user), &t.user, t.tenant.as_deref())
            })
            .collect())
    })
    .await
}

async fn revoke_token(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    write(&s, h, None, Need::Token, move |store, caller| {
        let Some(found) = store.tokens()?.into_iter().find(|t| t.id == id) else {
            return Err(crate::backend::store::unknown_token(&id).into());
        };
        caller.access.require_token_of(
            Some(&caller.user),
            &found.user,
            found.tenant.as_deref(),
            "revoking another user's token",
        )?;
        Ok(store.revoke_token(&id, &crate::backend::store::now_rfc3339())?)
    })
    .await
}

/// A variables use case's refusal as an answer (never with a value).
fn vars_fault(e: VarsError) -> Fault {
    match e {
        VarsError::Access(a) => a.into(),
        VarsError::Store(s) => s.into(),
        VarsError::Unsupported => Fault::Api(ApiError::internal(e.to_string())),
        VarsError::BadName { .. } | VarsError::Empty { .. } | VarsError::Secret(_) => {
            Fault::Api(ApiError::bad_request("bad_variable", e.to_string()))
        }
    }
}

async fn variables(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
) -> Result<Json<wire::VariableNames>, ApiError> {
    let need = Need::Role(Role::Viewer, "listing variables");
    read(&s, h, Some(t.clone()), need, move |store, _| {
        store.tenant(&t)?;
        Ok(wire::VariableNames {
            names: vars::set_names(store, &t)?,
        })
    })
    .await
}

async fn set_variable(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((t, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let need = Need::Role(Role::Editor, "setting a variable");
    write(&s, h, Some(t.clone()), need, move |store, caller| {
        let body: wire::VariableValue = parse(&body)?;
        vars::set_ciphertext(store, &caller.actor(), &t, &name, &body.ciphertext)
            .map_err(vars_fault)?;
        Ok(serde_json::json!({}))
    })
    .await
}

async fn unset_variable(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((t, name)): Path<(String, String)>,
) -> Result<Json<wire::Unset>, ApiError> {
    let need = Need::Role(Role::Editor, "unsetting a variable");
    write(&s, h, Some(t.clone()), need, move |store, caller| {
        let was_set = vars::unset(store, &caller.actor(), &t, &name).map_err(vars_fault)?;
        Ok(wire::Unset { was_set })
    })
    .await
}

async fn delete_tenant(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<TenantRecord>, ApiError> {
    let need = Need::Role(Role::Owner, "deleting a tenant");
    write(&s, h, Some(t.clone()), need, move |store, caller| {
        let body: wire::DeleteTenant = parse(&body)?;
        tenants::delete_at(store, &caller.actor(), &t, body.force, body.revision).map_err(|e| {
            match e {
                TenantError::Access(a) => a.into(),
                TenantError::Store(s) => s.into(),
                TenantError::Origin { ref dependants, .. } => {
                    let list = serde_json::to_value(dependants).unwrap_or_default();
                    Fault::Api(
                        ApiError::conflict("origin", e.to_string())
                            .with("dependants", list)
                            .hint("delete with --force to delete it all the same"),
                    )
                }
                TenantError::Unsupported => Fault::Api(ApiError::internal(e.to_string())),
            }
        })
    })
    .await
}

/// A plan the server could not make as an answer.
fn plan_fault(e: RemotePlanError) -> Fault {
    match e {
        RemotePlanError::BadBody { .. } => Fault::Api(bad_body(e.to_string())),
        RemotePlanError::Pipeline(PipelineError::Store(s)) => s.into(),
        RemotePlanError::Pipeline(p @ PipelineError::EmptyTree { .. }) => {
            Fault::Api(ApiError::conflict("empty_tree", p.to_string()))
        }
        RemotePlanError::Pipeline(p @ PipelineError::Source(_)) => {
            Fault::Api(ApiError::bad_request("bad_tree", p.to_string()))
        }
        RemotePlanError::Pipeline(p) => Fault::Api(ApiError::internal(p.to_string())),
    }
}

async fn plan_tree(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::PlanAnswer>, ApiError> {
    view(&s, h, t, move |store, t| {
        let request: wire::PlanTree = parse(&body)?;
        remote_plan::answer(store, t, &request).map_err(plan_fault)
    })
    .await
}

async fn export_tree(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<wire::ExportAnswer>, ApiError> {
    view(&s, h, t, move |store, t| {
        let request: wire::ExportRequest = parse(&body)?;
        remote_export::answer(store, t, &request).map_err(|e| plan_fault(e.into()))
    })
    .await
}

/// The query of `GET …/syncs`.
#[derive(Debug, Deserialize)]
struct SourceQuery {
    /// The source key, `<instance>/<tenant>`.
    #[serde(default)]
    source: Option<String>,
}

async fn sync_records(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    Query(q): Query<SourceQuery>,
) -> Result<Json<wire::Syncs>, ApiError> {
    view(&s, h, t, move |store, t| {
        let Some(source) = q.source.filter(|s| !s.is_empty()) else {
            return Err(
                ApiError::bad_request("no_source", "the query needs a non-empty `source`").into(),
            );
        };
        Ok(wire::Syncs {
            records: store.sync_records(t, &source)?,
            source_key: source,
        })
    })
    .await
}

async fn record_syncs(
    State(s): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let need = Need::Role(Role::Editor, "recording syncs");
    write(&s, h, Some(t.clone()), need, move |store, _| {
        let body: wire::Syncs = parse(&body)?;
        store.record_syncs(&t, &body.source_key, &body.records)?;
        Ok(serde_json::json!({}))
    })
    .await
}

/// Register ferry's own API.
pub fn routes(r: Registry) -> Registry {
    let r = r
        .add(Method::GET, "/api/ferry/v1/whoami", get(whoami))
        .add(Method::GET, "/api/ferry/v1/revision", get(revision))
        .add(Method::GET, "/api/ferry/v1/tenants", get(tenants))
        .add(Method::POST, "/api/ferry/v1/tenants", post(create_tenant))
        .add(Method::GET, "/api/ferry/v1/tenants/{tenant}", get(tenant));
    tenant_routes(r)
        .add(
            Method::DELETE,
            "/api/ferry/v1/tenants/{tenant}",
            delete(delete_tenant),
        )
        .add(
            Method::GET,
            "/api/ferry/v1/tenants/{tenant}/variables",
            get(variables),
        )
        .add(
            Method::PUT,
            "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
            put(set_variable),
        )
        .add(
            Method::DELETE,
            "/api/ferry/v1/tenants/{tenant}/variables/{variable}",
            delete(unset_variable),
        )
        .add(Method::GET, "/api/ferry/v1/access", get(access))
        .add(Method::POST, "/api/ferry/v1/users", post(add_user))
        .add(Method::PUT, "/api/ferry/v1/grants", put(grant))
        .add(Method::POST, "/api/ferry/v1/tokens", post(add_token))
        .add(Method::POST, "/api/ferry/v1/tokens/lookup", post(token))
        .add(Method::GET, "/api/ferry/v1/tokens", get(tokens))
        .add(
            Method::POST,
            "/api/ferry/v1/tokens/{token_id}/revoke",
            post(revoke_token),
        )
}

/// The routes under `/api/ferry/v1/tenants/{tenant}/…`.
fn tenant_routes(r: Registry) -> Registry {
    r.add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/identity",
        get(identity),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/index",
        get(index),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/drafts",
        get(all_drafts),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/drafts/lookup",
        post(drafts),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/drafts/stamps",
        post(draft_stamps),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/plan",
        post(plan_tree),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/export",
        post(export_tree),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/write",
        post(write_batch),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/versions/lookup",
        post(versions),
    )
    .add(
        Method::PUT,
        "/api/ferry/v1/tenants/{tenant}/versions",
        put(put_versions),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/production",
        get(production),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/production/lookup",
        post(production_of),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/publishes",
        get(publishes),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/publishes",
        post(publish),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/publishes/next",
        get(next_publish),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/publishes/{change_track_id}/changes",
        get(publish_changes),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/drift",
        get(drift),
    )
    .add(
        Method::GET,
        "/api/ferry/v1/tenants/{tenant}/syncs",
        get(sync_records),
    )
    .add(
        Method::POST,
        "/api/ferry/v1/tenants/{tenant}/syncs",
        post(record_syncs),
    )
}
