//! The HTTP error shape and how library errors map onto it.
//!
//! Every failure leaves the server as `{"error": {"code", "message",
//! "hint"}}` with a status that says whose fault it is: 400 bad input, 401
//! no or unknown token, 403 a role too weak, 404 nothing there (or nothing
//! the caller may see), 409 a conflict with the store's state, 413 a body
//! too large, 500 the server's own failure, 503 the store's database
//! unavailable (whatever use-case error wraps it: [`StoreCause`] finds it).
//! Messages come from the library's structured errors, which never carry a
//! secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::backend::store::StoreError;
use crate::domain::access::AccessError;
use crate::domain::answer::ErrorAnswer;
use crate::service::apply::ApplyError;
use crate::service::failure::StoreCause;
use crate::service::pipeline::PipelineError;
use crate::service::promote::PromoteError;

/// An error answered over HTTP.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `tenant_not_found`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// What to do about it, if there is something.
    pub hint: Option<String>,
    /// Extra top-level fields of the body (e.g. `hasChanges: false`).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            hint: None,
            extra: None,
        }
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    /// Add a top-level field to the body.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> ApiError {
        self.extra
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.to_string(), value);
        self
    }

    /// 400: the request is wrong.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no token, or one the store does not know.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            .hint("send `Authorization: Bearer <token>`; `ferry token create --user U --tenant T` makes one")
    }

    /// 403: the caller's role is too weak.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing there.
    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409: the store's state refuses the request.
    pub fn conflict(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 503: the store's database cannot be reached; the client may try again.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
        .hint("the server's database is down or restarting; try again shortly")
    }

    /// 503 when the store's database is unavailable under `e`, however it is wrapped.
    pub fn if_unavailable(e: &impl StoreCause) -> Option<ApiError> {
        match e.store_cause() {
            Some(s @ StoreError::Unavailable { .. }) => Some(ApiError::unavailable(s.to_string())),
            _ => None,
        }
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// An error answer of the library's (its code, message, hint and extra fields) with a status.
    pub fn from_answer(status: StatusCode, answer: ErrorAnswer) -> ApiError {
        ApiError {
            status,
            code: answer.error.code,
            message: answer.error.message,
            hint: answer.error.hint,
            extra: (!answer.extra.is_empty()).then_some(answer.extra),
        }
    }

    /// The JSON body: the library's one error shape.
    pub fn body(&self) -> serde_json::Value {
        let mut answer = ErrorAnswer::new(&self.code, self.message.clone(), self.hint.clone());
        if let Some(extra) = &self.extra {
            answer.extra.extend(extra.clone());
        }
        answer.to_value()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let msg = e.to_string();
        let known = e.code().to_string();
        match e {
            StoreError::NoTenant { .. } => ApiError::not_found(&known, msg),
            StoreError::NoToken { id } => {
                ApiError::not_found(&known, msg).with("id", serde_json::Value::String(id))
            }
            StoreError::TenantExists { .. }
            | StoreError::Busy { .. }
            | StoreError::Refused { .. } => ApiError::conflict(&known, msg),
            StoreError::Stale { .. } => {
                ApiError::conflict(&known, msg).hint("read the current state and try again")
            }
            StoreError::Unavailable { .. } | StoreError::Unreachable { .. } => {
                ApiError::unavailable(msg)
            }
            StoreError::Remote {
                status,
                code,
                message,
                hint,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let e = ApiError::new(status, &code, message);
                match hint {
                    Some(h) => e.hint(h),
                    None => e,
                }
            }
            StoreError::BadUrl { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Sqlite(_)
            | StoreError::Database { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Open { .. } => ApiError::internal(msg),
        }
    }
}

impl From<crate::service::tenants::NewTenantError> for ApiError {
    fn from(e: crate::service::tenants::NewTenantError) -> ApiError {
        use crate::service::tenants::NewTenantError;
        match e {
            NewTenantError::BadName { .. } => ApiError::bad_request("bad_name", e.to_string()),
            NewTenantError::BadKeys { .. } => ApiError::bad_request("bad_keys", e.to_string())
                .hint("the identity must be an age private key (AGE-SECRET-KEY-1…) and the recipient its public key"),
            NewTenantError::Access(e) => e.into(),
            NewTenantError::Store(e) => e.into(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> ApiError {
        match e {
            AccessError::NoActor | AccessError::UnknownUser { .. } => {
                ApiError::unauthorized(e.reason())
            }
            _ => {
                let hint = e.hint().unwrap_or_else(|| {
                    "an owner of the tenant can grant a role with `ferry grant USER TENANT ROLE`"
                        .to_string()
                });
                ApiError::forbidden(e.reason()).hint(hint)
            }
        }
    }
}

impl From<crate::service::access::AccessUseError> for ApiError {
    fn from(e: crate::service::access::AccessUseError) -> ApiError {
        use crate::service::access::AccessUseError as E;
        match e {
            E::Access(a) => a.into(),
            E::Store(s) => s.into(),
            E::Random { .. } => ApiError::internal(e.to_string()),
            E::BadName { .. } | E::Lifetime(_) => {
                ApiError::bad_request("bad_request", e.to_string())
            }
        }
    }
}

impl From<PromoteError> for ApiError {
    fn from(e: PromoteError) -> ApiError {
        if let Some(unavailable) = ApiError::if_unavailable(&e) {
            return unavailable;
        }
        let msg = e.to_string();
        match e {
            PromoteError::SameTenant { .. } => ApiError::bad_request("same_tenant", msg),
            PromoteError::Lineage { .. } => {
                let hint = e.hint().unwrap_or_default();
                ApiError::conflict("lineage", msg).hint(hint)
            }
            PromoteError::AgainstChain(_) => {
                let hint = e.hint().unwrap_or_default();
                ApiError::conflict("against_chain", msg).hint(hint)
            }
            PromoteError::NameTaken { .. } => ApiError::conflict("name_taken", msg),
            PromoteError::MissingDependencies { .. } => {
                ApiError::conflict("missing_dependencies", msg)
                    .hint("run the steps in the order GET /api/tenant/sync/steps gives")
            }
            PromoteError::DanglingSource { .. } | PromoteError::Invalid { .. } => {
                ApiError::conflict("invalid_source", msg)
            }
            PromoteError::Store(s)
            | PromoteError::Apply(ApplyError::Store(s))
            | PromoteError::Pipeline(PipelineError::Store(s)) => s.into(),
            PromoteError::Apply(ApplyError::MassDelete { .. }) => {
                ApiError::conflict("mass_delete", msg)
            }
            PromoteError::Secret { .. } => ApiError::conflict("secret", msg),
            PromoteError::Access(a) => a.into(),
            _ => ApiError::internal(msg),
        }
    }
}

/// Rewrite a framework error response (plain text) into the error shape.
pub fn json_error(status: StatusCode) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "too_large",
            "the request body is larger than the server accepts",
        ),
        StatusCode::NOT_FOUND => ApiError::not_found("no_route", "no such endpoint")
            .hint("GET /openapi.json lists the endpoints"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported_media_type",
            "the request body has the wrong content type",
        ),
        s if s.is_client_error() => ApiError::new(s, "bad_request", "the request is malformed"),
        s => ApiError::new(s, "internal", "the server failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::live_sync::LiveSyncError;
    use crate::service::staging::StagingError;
    use crate::service::zip_export::ExportError;
    use crate::service::zip_import::ImportError;

    fn down() -> StoreError {
        StoreError::Unavailable {
            reason: "connection refused".into(),
        }
    }

    /// The database down is a 503 with the error shape and a hint, whichever use case met it.
    #[test]
    fn an_unavailable_store_is_503_however_it_is_wrapped() {
        let answers: Vec<(&str, ApiError)> = vec![
            ("store", down().into()),
            ("staging", StagingError::Store(down()).into()),
            (
                "staging pipeline",
                StagingError::Pipeline(PipelineError::Store(down())).into(),
            ),
            ("promote", PromoteError::Store(down()).into()),
            (
                "promote pipeline",
                PromoteError::Pipeline(PipelineError::Store(down())).into(),
            ),
            (
                "promote apply",
                PromoteError::Apply(ApplyError::Store(down())).into(),
            ),
            ("import", ImportError::Store(down()).into()),
            (
                "import pipeline",
                ImportError::Pipeline(PipelineError::Store(down())).into(),
            ),
            (
                "import apply",
                ImportError::Apply(ApplyError::Store(down())).into(),
            ),
            (
                "export pipeline",
                ExportError::Pipeline(PipelineError::Store(down())).into(),
            ),
            ("live sync", LiveSyncError::Store(down()).into()),
        ];
        for (path, a) in answers {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {a}");
            let body = a.body();
            assert_eq!(body["error"]["code"], "store_unavailable", "{path}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("unavailable")),
                "{path}: {body}"
            );
            assert!(body["error"]["hint"].is_string(), "{path}: {body}");
        }
    }

    #[test]
    fn other_wrapped_store_errors_keep_their_status() {
        let stale = || StoreError::Stale {
            tenant: "acme-dev".into(),
            planned: 1,
            actual: 2,
        };
        let a: ApiError = ImportError::Apply(ApplyError::Store(stale())).into();
        assert_eq!(a.status, StatusCode::CONFLICT);
        let a: ApiError = StagingError::Pipeline(PipelineError::Store(stale())).into();
        assert_eq!(a.status, StatusCode::CONFLICT);
    }
}
