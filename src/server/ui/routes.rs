//! The one table of the web UI's pages and forms ([`UI_ROUTES`]), and the
//! registry ([`empty_registry`]) that builds the UI's router from it.
//!
//! The registry is the API's (`openapi::Registry`) over this table: it
//! registers a handler only for a method and path the table holds; any
//! other is kept out and makes `into_router` fail, so the server does not
//! start. The authorisation matrix (`tests/it/ui_matrix.rs`) is generated
//! from this table: a writing form added here without a row there fails it.

pub use crate::server::openapi::Registry;
use crate::service::serving::ServeError;

/// One page or form of the UI.
#[derive(Debug, Clone, Copy)]
pub struct UiRoute {
    /// The HTTP method, upper case.
    pub method: &'static str,
    /// The path, with `{param}` segments.
    pub path: &'static str,
    /// What it is.
    pub summary: &'static str,
}

const fn r(method: &'static str, path: &'static str, summary: &'static str) -> UiRoute {
    UiRoute {
        method,
        path,
        summary,
    }
}

/// Every page, asset and form of the UI.
pub const UI_ROUTES: &[UiRoute] = &[
    r("GET", "/", "The tenants the person may see"),
    r("GET", "/ui/assets/htmx.min.js", "The vendored htmx"),
    r("GET", "/ui/assets/ui.css", "The style sheet"),
    r("GET", "/sign-in", "The sign-in form"),
    r("POST", "/sign-in", "Sign in with an API token"),
    r("POST", "/sign-out", "Sign out"),
    r("GET", "/t/{tenant}", "A tenant's resources by kind"),
    r(
        "POST",
        "/t/{tenant}/syncable/{id}",
        "Set or clear a resource's syncable flag",
    ),
    r(
        "GET",
        "/t/{tenant}/agents/{agent}",
        "The agent's staging editor",
    ),
    r(
        "POST",
        "/t/{tenant}/agents/{agent}/edit",
        "Save the editor to staging",
    ),
    r(
        "GET",
        "/t/{tenant}/agents/{agent}/diff",
        "Production and staging side by side",
    ),
    r(
        "POST",
        "/t/{tenant}/agents/{agent}/publish",
        "Publish the agent",
    ),
    r("GET", "/t/{tenant}/history", "The publish history"),
    r(
        "GET",
        "/t/{tenant}/history/{change}",
        "Preview reverting a publish",
    ),
    r(
        "POST",
        "/t/{tenant}/history/{change}/revert",
        "Revert a publish out of staging",
    ),
    r("GET", "/t/{tenant}/sync", "The sync panel"),
    r("POST", "/t/{tenant}/sync", "Run a sync into another tenant"),
    r(
        "GET",
        "/t/{tenant}/agents/{agent}/export",
        "The export preview tree",
    ),
    r(
        "GET",
        "/t/{tenant}/agents/{agent}/export.zip",
        "The exported ZIP",
    ),
    r("GET", "/t/{tenant}/import", "The ZIP import form"),
    r("POST", "/t/{tenant}/import", "Import a previewed ZIP"),
    r(
        "POST",
        "/t/{tenant}/import/preview",
        "Preview importing an uploaded ZIP",
    ),
    r(
        "GET",
        "/t/{tenant}/live-sync",
        "The live-sync form (a source instance and its agents)",
    ),
    r(
        "POST",
        "/t/{tenant}/live-sync",
        "List a source's agents, preview one, or sync it into the tenant",
    ),
];

/// An empty registry for the routes of [`UI_ROUTES`]: the API's registry
/// over the UI's table.
pub fn empty_registry() -> Registry {
    Registry::listing(
        |method, path| {
            UI_ROUTES
                .iter()
                .any(|d| d.method == method && d.path == path)
        },
        |method, path| ServeError::UnlistedPage { method, path },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::Method;

    use super::*;

    #[test]
    fn every_ui_route_is_listed_and_every_listed_route_is_routed() {
        let registry = crate::server::ui::registry();
        let registered: BTreeSet<(String, String)> =
            registry.registered().iter().cloned().collect();
        assert_eq!(registered.len(), registry.registered().len(), "twice");
        let listed: BTreeSet<(String, String)> = UI_ROUTES
            .iter()
            .map(|d| (d.method.to_string(), d.path.to_string()))
            .collect();
        assert_eq!(registered, listed);
        assert!(registry.into_router().is_ok());
        let refused = crate::server::ui::registry()
            .add(
                Method::POST,
                "/t/{tenant}/not-listed",
                axum::routing::post(|| async { "" }),
            )
            .into_router()
            .unwrap_err();
        assert!(
            refused.to_string().contains("POST /t/{tenant}/not-listed"),
            "{refused}"
        );
    }
}
