//! Who acts: the one identity every command resolves, checks and records.
//!
//! In this order: `--as USER`, then `FERRY_USER`, then `user` in
//! `ferry.toml`, then git's user name (`GIT_AUTHOR_NAME` when set, as git
//! itself would author with it, else `user.name` from git config). The same
//! value goes to the role check and into what is recorded (publishes, tags).

use super::repo::Repo;
use super::Global;
use crate::backend::vcs;
use crate::service::access::Actor;

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
    Actor::from_name(
        g.actor
            .clone()
            .or_else(|| env("FERRY_USER"))
            .or_else(|| repo.and_then(|r| r.config.user.clone()))
            .or_else(git_user),
    )
}
