//! Bearer tokens: knowing the caller from one.
//!
//! Tokens are made by [`crate::service::access::create_token`] (32 random
//! bytes, printed once as `fy_<hex>`; the store keeps only its blake3
//! hash). A request's `Authorization: Bearer <token>` names
//! the user and, if the token was made with `--tenant`, the current tenant
//! (the source tenant of a sync). A revoked or expired token, or one whose
//! user is gone, is a 401 ([`crate::service::access::check_token`]). Roles
//! are checked per tenant through [`crate::domain::access`], the same rules
//! the CLI uses. The server records each token's last use at most once a
//! minute, after the request ([`crate::service::access::record_token_use`]).

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::backend::store::Store;
use crate::domain::access::{AccessState, Role};
use crate::service::access::{check_token, Actor};

/// Who is calling, from their token, with the store's roles as read for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: String,
    /// The token's current tenant, if bound to one.
    pub tenant: Option<String>,
    /// Every user and grant of the store, as read for this request.
    pub access: std::sync::Arc<AccessState>,
}

impl Caller {
    /// The current tenant, or a 400 saying the token has none.
    pub fn current_tenant(&self) -> Result<&str, ApiError> {
        self.tenant.as_deref().ok_or_else(|| {
            ApiError::bad_request(
                "no_current_tenant",
                format!("the token of `{}` is not bound to a tenant", self.user),
            )
            .hint("make one with `ferry token create --user USER --tenant TENANT`")
        })
    }

    /// The caller as the actor of a use case, with the roles read for this
    /// request (the use case checks them without reading them again).
    pub fn actor(&self) -> Actor {
        Actor::named(self.user.clone()).with_access(self.access.clone())
    }

    /// Require at least `role` on `tenant`; a tenant the caller may not see is a 403.
    pub fn require(&self, tenant: &str, role: Role, action: &str) -> Result<(), ApiError> {
        self.access
            .require(Some(&self.user), tenant, role, action)?;
        Ok(())
    }
}

/// The bearer token of a request, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Know the caller from the request's token: 401 when there is none, or
/// the store does not know it, or it was revoked or expired.
pub fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::unauthorized("this endpoint needs a bearer token"));
    };
    match check_token(store, token)? {
        Ok((record, access)) => {
            note_admitted(token);
            Ok(Caller {
                user: record.user,
                tenant: record.tenant,
                access: std::sync::Arc::new(access),
            })
        }
        Err(refusal) => Err(ApiError::unauthorized(refusal.to_string())),
    }
}

/// The tokens (by hash) that let a request in since their use was last
/// taken: only these get their use recorded, so a request with a made-up
/// token (on a public route, say) never causes a write.
fn admitted() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static ADMITTED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    ADMITTED.get_or_init(Default::default)
}

fn note_admitted(token: &str) {
    let mut set = admitted()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if set.len() >= 4096 {
        set.clear();
    }
    set.insert(crate::service::access::token_hash(token));
}

/// Whether `token` let a request in since the last call for it (and forget it).
pub fn take_admitted(token: &str) -> bool {
    admitted()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&crate::service::access::token_hash(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn only_an_admitted_token_is_taken_and_only_once() {
        assert!(!take_admitted("fy_made_up"));
        note_admitted("fy_known");
        assert!(take_admitted("fy_known"));
        assert!(!take_admitted("fy_known"));
    }
}
