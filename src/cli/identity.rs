//! Who acts: the one identity every command resolves, checks and records.
//!
//! Against a remote store, the user its token belongs to (the server said
//! so when the store was opened). Otherwise, in this order: `--as USER`, then `FERRY_USER`, then `user` in
//! `ferry.toml`, then git's user name (`GIT_AUTHOR_NAME` when set, as git
//! itself would author with it, else `user.name` from git config). The same
//! value goes to the role check and into what is recorded (publishes, tags).

use super::repo::Repo;
use super::Global;
use crate::backend::vcs;
use crate::service::access::Actor;

/// The user of a remote store's token, once the store is open: it wins over every other source.
static TOKEN_USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Act as `user` from now on: the user a remote store's token belongs to.
pub(crate) fn act_as_token_user(user: &str) {
    let _ = TOKEN_USER.set(user.to_string());
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The acting user, resolved once per command.
pub(crate) fn actor(g: &Global, repo: Option<&Repo>) -> Actor {
    let git_user = || {
        env("GIT_AUTHOR_NAME").or_else(|| match repo {
            Some(r) => vcs::user_name(&r.root),
            None => std::env::current_dir()
                .ok()
                .and_then(|d| vcs::user_name(&d)),
        })
    };
    if let Some(user) = TOKEN_USER.get() {
        return Actor::named(user.clone());
    }
    Actor::from_name(
        g.actor
            .clone()
            .or_else(|| env("FERRY_USER"))
            .or_else(|| repo.and_then(|r| r.config.user.clone()))
            .or_else(git_user),
    )
}
