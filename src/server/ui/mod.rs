//! The web UI of `ferry serve`: server-rendered pages (maud) with a
//! vendored htmx, for the people who review, edit, publish and sync agents
//! in a browser.
//!
//! This module is a front end inside the server, like the API routes next
//! to it: every page reads through the same library functions the API and
//! the CLI call, and every form writes through them (`staging::edit_staging`,
//! `publishing::publish`, `publishing::revert`, `promote::plan_as`,
//! `syncable::set_syncable`, `live_sync` with `zip_import::import_bytes`),
//! which check the role again. It has no rules
//! of its own. Sign-in takes an API token and makes a session
//! ([`crate::service::sessions`]): an `HttpOnly; SameSite=Strict` cookie
//! whose secret the store keeps only hashed. Every writing form carries the
//! session's CSRF token, checked before anything is read. Every asset is
//! built into the binary; a page loads nothing from another host. Errors
//! are pages with the library's message and hint, never a JSON body.
//! The UI's routes are not part of `/openapi.json` (they are pages, not
//! the API); [`router`] is merged into the server's router. Every page and
//! form is a row of [`UI_ROUTES`], which the router is built from.

mod backup;
mod history;
mod live;
mod resources;
mod routes;
mod staging;
mod sync;
mod tenants;
mod view;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use super::error::ApiError;
use super::{read_store, with_store, Shared};
use crate::backend::store::Store;
use crate::domain::access::{AccessState, Role};
use crate::service::access::Actor;
use crate::service::serving::ServeError;
use crate::service::sessions::{self, SessionError, SessionUser};

pub use routes::{Registry, UiRoute, UI_ROUTES};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ferry_session";

const HTMX: &str = include_str!("assets/htmx.min.js");
const CSS: &str = include_str!("assets/ui.css");

/// Every page and form of the UI, registered against [`UI_ROUTES`].
pub fn registry() -> Registry {
    routes::empty_registry()
        .add(Method::GET, "/", get(tenants::page))
        .add(Method::GET, "/ui/assets/htmx.min.js", get(htmx_js))
        .add(Method::GET, "/ui/assets/ui.css", get(ui_css))
        .add(Method::GET, "/sign-in", get(sign_in_page))
        .add(Method::POST, "/sign-in", post(sign_in))
        .add(Method::POST, "/sign-out", post(sign_out))
        .add(Method::GET, "/t/{tenant}", get(resources::page))
        .add(
            Method::POST,
            "/t/{tenant}/syncable/{id}",
            post(resources::toggle),
        )
        .add(
            Method::GET,
            "/t/{tenant}/agents/{agent}",
            get(staging::editor),
        )
        .add(
            Method::POST,
            "/t/{tenant}/agents/{agent}/edit",
            post(staging::save),
        )
        .add(
            Method::GET,
            "/t/{tenant}/agents/{agent}/diff",
            get(staging::diff),
        )
        .add(
            Method::POST,
            "/t/{tenant}/agents/{agent}/publish",
            post(staging::publish),
        )
        .add(Method::GET, "/t/{tenant}/history", get(history::page))
        .add(
            Method::GET,
            "/t/{tenant}/history/{change}",
            get(history::preview),
        )
        .add(
            Method::POST,
            "/t/{tenant}/history/{change}/revert",
            post(history::revert),
        )
        .add(Method::GET, "/t/{tenant}/sync", get(sync::page))
        .add(Method::POST, "/t/{tenant}/sync", post(sync::run))
        .add(
            Method::GET,
            "/t/{tenant}/agents/{agent}/export",
            get(backup::export_page),
        )
        .add(
            Method::GET,
            "/t/{tenant}/agents/{agent}/export.zip",
            get(backup::export_zip),
        )
        .add(Method::GET, "/t/{tenant}/import", get(backup::import_page))
        .add(Method::POST, "/t/{tenant}/import", post(backup::import))
        .add(
            Method::POST,
            "/t/{tenant}/import/preview",
            post(backup::import_preview),
        )
        .add(Method::GET, "/t/{tenant}/live-sync", get(live::page))
        .add(Method::POST, "/t/{tenant}/live-sync", post(live::run))
}

/// The UI's router; refused when a page or form is not in [`UI_ROUTES`].
pub fn router() -> Result<Router<Shared>, ServeError> {
    registry().into_router()
}

async fn htmx_js() -> Response {
    asset(HTMX, "text/javascript; charset=utf-8")
}

async fn ui_css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The signed-in person of a request, with the store's roles as read now.
pub struct Me {
    /// The user.
    pub user: String,
    /// Every user and grant, as read for this request.
    pub access: std::sync::Arc<AccessState>,
    /// The session's CSRF token, for forms.
    pub csrf: String,
}

impl Me {
    /// The person as the actor of a use case, with the roles read for this
    /// request (the use case checks them without reading them again).
    pub fn actor(&self) -> Actor {
        Actor::named(self.user.clone()).with_access(self.access.clone())
    }

    /// Their role on `tenant`, if any.
    pub fn role(&self, tenant: &str) -> Option<Role> {
        self.access.role(&self.user, tenant)
    }

    /// Whether they hold at least `role` on `tenant`.
    pub fn may(&self, tenant: &str, role: Role) -> bool {
        self.role(tenant).is_some_and(|r| r >= role)
    }
}

/// The code of the error that sends a signed-out browser to the sign-in page.
const SIGNED_OUT: &str = "signed_out";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The session secret of the request's cookie, if any.
fn session_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The signed-in person, or the error that sends the browser to sign in.
pub fn me(store: &dyn Store, headers: &HeaderMap) -> Result<Me, ApiError> {
    let signed_out = || {
        ApiError::unauthorized("please sign in")
            .hint("")
            .with_code(SIGNED_OUT)
    };
    let secret = session_secret(headers).ok_or_else(signed_out)?;
    let SessionUser {
        user, access, csrf, ..
    } = sessions::session_user(store, &secret, now_secs())?.ok_or_else(signed_out)?;
    let access = std::sync::Arc::new(access);
    Ok(Me { user, access, csrf })
}

/// The signed-in person of a writing form, after its CSRF token and origin are checked (403 otherwise).
pub fn me_writing(store: &dyn Store, headers: &HeaderMap, form: &Form) -> Result<Me, ApiError> {
    refuse_cross_site(headers)?;
    let me = me(store, headers)?;
    let secret = session_secret(headers).unwrap_or_default();
    let given = form.get("csrf").unwrap_or("");
    if !sessions::csrf_matches(&secret, given) {
        return Err(ApiError::forbidden(
            "this form is not from your session (its CSRF token does not match)",
        )
        .hint("reload the page and submit the form again"));
    }
    Ok(me)
}

/// Refuse a form posted from another site (the browser says so in `Sec-Fetch-Site`).
fn refuse_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("same-origin");
    if site == "cross-site" || site == "same-site" {
        return Err(ApiError::forbidden(
            "this form was posted from another site",
        ));
    }
    Ok(())
}

impl ApiError {
    /// The same error with another code.
    fn with_code(mut self, code: &str) -> ApiError {
        self.code = code.to_string();
        self
    }
}

/// A URL-encoded form body, in order (a key may repeat).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Decode a body.
    pub fn parse(body: &Bytes) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A 303 to `to`.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// A page, or its error as a page (a signed-out browser goes to sign in).
pub fn respond(result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) if e.code == SIGNED_OUT => see_other("/sign-in"),
        Err(e) => error_page(&e),
    }
}

/// A page that only reads, for the signed-in person: `render` calls the
/// library, which checks their role on `tenant` before it looks anything up.
pub async fn read_page<F>(state: &Shared, headers: HeaderMap, tenant: String, render: F) -> Response
where
    F: FnOnce(&dyn Store, &Me, &str) -> Result<Response, ApiError> + Send + 'static,
{
    respond(
        read_store(state, move |store| {
            let me = me(store, &headers)?;
            render(store, &me, &tenant)
        })
        .await,
    )
}

/// A writing form: its session and CSRF token are checked, then `write` runs on the writer.
pub async fn write_form<F>(state: &Shared, headers: HeaderMap, body: Bytes, write: F) -> Response
where
    F: FnOnce(&mut dyn Store, &Me, &Form) -> Result<Response, ApiError> + Send + 'static,
{
    let form = Form::parse(&body);
    respond(
        with_store(state, move |store| {
            let me = me_writing(&*store, &headers, &form)?;
            write(store, &me, &form)
        })
        .await,
    )
}

/// A rendered page with status 200.
pub fn ok(markup: Markup) -> Result<Response, ApiError> {
    Ok(Html(markup.into_string()).into_response())
}

/// An error as a readable page with its status.
pub fn error_page(e: &ApiError) -> Response {
    let title = match e.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Refused",
        StatusCode::BAD_REQUEST => "Cannot do that",
        s if s.is_server_error() => "The server failed",
        _ => "Something went wrong",
    };
    let body = html! {
        h1 { (title) }
        div.error role="alert" {
            p { (e.message) }
            @if let Some(h) = e.hint.as_deref().filter(|h| !h.is_empty()) { p { "Hint: " (h) } }
        }
        p { a href="/" { "Back to the tenants" } }
    };
    (
        e.status,
        Html(layout(title, None, None, body).into_string()),
    )
        .into_response()
}

/// The page around `body`: header with the signed-in user, their tenants and sign-out.
pub fn layout(title: &str, me: Option<&Me>, tenant: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ferry" }
                link rel="stylesheet" href="/ui/assets/ui.css";
                script src="/ui/assets/htmx.min.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to the content" }
                header.top {
                    a.brand href="/" { "ferry" }
                    @if let Some(me) = me {
                        div.who {
                            span #signed-in { "Signed in as " strong { (me.user) } }
                            form method="post" action="/sign-out" {
                                input type="hidden" name="csrf" value=(me.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @if let Some(t) = tenant {
                    nav.tenant aria-label="Tenant" {
                        strong { (t) }
                        a href={ "/t/" (t) } { "Resources" }
                        a href={ "/t/" (t) "/history" } { "History" }
                        a href={ "/t/" (t) "/sync" } { "Sync" }
                        a href={ "/t/" (t) "/import" } { "Import a ZIP" }
                        a href={ "/t/" (t) "/live-sync" } { "Live sync" }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden CSRF field of a writing form.
pub fn csrf_field(me: &Me) -> Markup {
    html! { input type="hidden" name="csrf" value=(me.csrf); }
}

async fn sign_in_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let signed_in = read_store(&state, move |s| Ok(me(s, &headers).is_ok())).await;
    if matches!(signed_in, Ok(true)) {
        return see_other("/");
    }
    Html(sign_in_form(None).into_string()).into_response()
}

fn sign_in_form(problem: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(p) = problem { div.error role="alert" { p #sign-in-error { (p) } } }
        form.card method="post" action="/sign-in" {
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required;
            p.muted { "Make one with " code { "ferry token create --user YOU" } "." }
            button type="submit" { "Sign in" }
        }
    };
    layout("Sign in", None, None, body)
}

async fn sign_in(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = refuse_cross_site(&headers) {
        return error_page(&e);
    }
    let token = Form::parse(&body).get("token").unwrap_or("").to_string();
    let made = with_store(&state, move |store| {
        match sessions::sign_in(store, &token, now_secs()) {
            Ok(s) => Ok(Ok(s)),
            Err(e @ SessionError::Refused(_)) => Ok(Err(e.to_string())),
            Err(SessionError::Store(s)) => Err(s.into()),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    })
    .await;
    match made {
        Ok(Ok(s)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                s.secret,
                sessions::SESSION_SECONDS
            );
            let mut r = see_other("/");
            if let Ok(v) = cookie.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(problem)) => (
            StatusCode::UNAUTHORIZED,
            Html(sign_in_form(Some(&problem)).into_string()),
        )
            .into_response(),
        Err(e) => error_page(&e),
    }
}

async fn sign_out(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let done = with_store(&state, move |store| {
        me_writing(&*store, &headers, &form)?;
        let secret = session_secret(&headers).unwrap_or_default();
        sessions::sign_out(store, &secret, now_secs())?;
        Ok(())
    })
    .await;
    match done {
        Ok(()) => {
            let mut r = see_other("/sign-in");
            let gone = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
            if let Ok(v) = gone.parse() {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => respond(Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(session_secret(&h), None);
        h.insert(
            header::COOKIE,
            "a=1; ferry_session=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(session_secret(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, "ferry_session=".parse().unwrap());
        assert_eq!(session_secret(&h), None);
    }

    #[test]
    fn forms_keep_repeated_keys_in_order() {
        let f = Form::parse(&Bytes::from_static(b"tools=a&x=1&tools=b%2Fc&csrf=z"));
        assert_eq!(f.all("tools"), vec!["a", "b/c"]);
        assert_eq!(f.get("x"), Some("1"));
        assert_eq!(f.get("nope"), None);
    }

    #[test]
    fn a_cross_site_post_is_refused() {
        let mut h = HeaderMap::new();
        assert!(refuse_cross_site(&h).is_ok());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert_eq!(
            refuse_cross_site(&h).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
