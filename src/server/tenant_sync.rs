//! Tenant-to-tenant sync over HTTP (document 000): the steps, and one step
//! from the caller's tenant into a target tenant.
//!
//! A step is `ferry promote --step` through the same library calls:
//! [`crate::service::promote::plan_as`] (which checks the caller is an admin
//! or owner of both tenants), then [`crate::service::promote::apply`] when something
//! changes. The answer is the promotion report, whose `summary` is the
//! plan's.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::openapi::Registry;
use super::{auth, with_store, Shared};
use crate::domain::chain::Chain;
use crate::domain::model::Kind;
use crate::service::promote::{self, Request};

/// Register the tenant-sync routes.
pub fn routes(r: Registry) -> Registry {
    r.add(Method::GET, "/api/tenant/sync/steps", get(steps))
        .add(
            Method::POST,
            "/api/tenant/sync/{targetTenantId}/{step}",
            post(sync_step),
        )
}

async fn steps() -> Json<Value> {
    let steps: Vec<&str> = Kind::ALL.iter().map(|k| k.step()).collect();
    Json(json!(crate::domain::answer::Items::new(steps)))
}

async fn sync_step(
    State(state): State<Shared>,
    Path((target, step)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let report = with_store(&state, move |store| {
        let caller = auth::authenticate(store, &headers)?;
        let from = caller.current_tenant()?.to_string();
        let kind = Kind::from_step(&step).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.step()).collect();
            ApiError::bad_request(
                "unknown_step",
                format!("unknown step `{step}`: expected one of {}", all.join(", ")),
            )
            .hint("GET /api/tenant/sync/steps lists them in order")
        })?;
        let request = Request {
            from: from.clone(),
            to: target.clone(),
            step: Some(kind),
            same_store: true,
            defined_variables: None,
            chain: Chain::default(),
            against_chain: false,
        };
        let promotion = promote::plan_as(&*store, &*store, &caller.actor(), &request)?;
        let mut report = serde_json::to_value(promote::report(&promotion))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (applied, revision) = if promote::has_changes(&promotion) {
            let a = promote::apply(store, &promotion)?;
            (true, a.revision)
        } else {
            (false, store.tenant(&target)?.revision)
        };
        if let Value::Object(o) = &mut report {
            o.insert("applied".into(), applied.into());
            o.insert("revision".into(), revision.into());
            o.insert("warnings".into(), json!(promotion.plan.warnings));
        }
        Ok(report)
    })
    .await?;
    Ok(Json(report))
}
