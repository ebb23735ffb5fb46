//! Users, roles and the authorization rules of the store.
//!
//! A store knows users and, per tenant, the role each one holds: `viewer`,
//! `editor`, `admin` or `owner` (each role includes the ones before it). A
//! user may also be a global owner, who holds `owner` on every tenant,
//! including tenants created later. The first user added to a store becomes
//! its global owner, and while a store has no users at all every action is
//! allowed: a new store works out of the box, and the first user owns
//! everything. This module is pure: the CLI and the HTTP server read an
//! [`AccessState`] from the store and ask it whether an actor may act.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A role a user holds on one tenant, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read.
    Viewer,
    /// May read and change drafts.
    Editor,
    /// May publish, promote and manage the tenant.
    Admin,
    /// May do everything, including granting roles.
    Owner,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner];

    /// The role's name, e.g. `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's name.
    pub name: String,
    /// Whether the user owns every tenant of the store.
    pub owner: bool,
}

/// One role of one user on one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The user.
    pub user: String,
    /// The tenant.
    pub tenant: String,
    /// The role.
    pub role: Role,
}

/// A user as `ferry user list` shows it: the user and their roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserListing {
    /// The user's name.
    pub name: String,
    /// Whether the user owns every tenant of the store.
    pub owner: bool,
    /// The user's roles, by tenant.
    pub grants: Vec<TenantRole>,
}

/// One role on one tenant, in a [`UserListing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRole {
    /// The tenant.
    pub tenant: String,
    /// The role.
    pub role: Role,
}

/// Every user and grant of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessState {
    /// Users, by name.
    pub users: Vec<UserRecord>,
    /// Grants, by user then tenant.
    pub grants: Vec<Grant>,
}

/// Why an actor may not do something. Its text ends in a `hint:` line
/// naming the command that fixes it, where there is one ([`AccessError::hint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// No actor could be determined while the store has users.
    NoActor,
    /// The actor is not a user of the store.
    UnknownUser {
        /// The actor.
        user: String,
        /// The role the refused action needed, where it needed one on a tenant.
        wanted: Option<Wanted>,
    },
    /// The actor's role on a tenant is too weak.
    Forbidden {
        /// The actor.
        user: String,
        /// The tenant.
        tenant: String,
        /// What was attempted, e.g. `promoting`.
        action: String,
        /// The weakest role that would allow it.
        needed: Role,
        /// The role the actor holds, if any.
        held: Option<Role>,
    },
    /// Only a global owner may do this.
    NotOwner {
        /// The actor.
        user: String,
        /// What was attempted.
        action: String,
    },
}

impl std::error::Error for AccessError {}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())?;
        match self.hint() {
            Some(h) => write!(f, "\nhint: {h}"),
            None => Ok(()),
        }
    }
}

/// The role an action needed on a tenant (for the refusal's message and hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The tenant.
    pub tenant: String,
    /// The weakest role that would allow the action.
    pub role: Role,
    /// What was attempted.
    pub action: String,
}

/// `s` quoted for a POSIX shell: inside single quotes, a `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The command that grants `user` the `role` on `tenant`, the user name shell-quoted.
pub fn grant_command(user: &str, tenant: &str, role: Role) -> String {
    format!("ferry grant {} {tenant} {role}", shell_quote(user))
}

impl AccessError {
    /// What was refused and why, without the hint.
    pub fn reason(&self) -> String {
        match self {
            AccessError::NoActor => "this store has users, and no user was given; pass --as USER or set `user` in ferry.toml".into(),
            AccessError::UnknownUser { user, wanted } => format!(
                "`{user}` is not a user of this store{}",
                wanted
                    .as_ref()
                    .map(|w| format!(
                        ", and {} needs the {} role on tenant `{}`",
                        w.action, w.role, w.tenant
                    ))
                    .unwrap_or_default()
            ),
            AccessError::Forbidden {
                user,
                tenant,
                action,
                needed,
                held,
            } => format!(
                "{action} needs the {needed} role on tenant `{tenant}`, and `{user}` has {}",
                held.map(|r| format!("only the {r} role there"))
                    .unwrap_or_else(|| "no role there".to_string())
            ),
            AccessError::NotOwner { user, action } => {
                format!("{action} needs a store owner, and `{user}` is not one")
            }
        }
    }

    /// The command that would fix the refusal, for a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            AccessError::NoActor => Some(
                "say who you are: `ferry --as USER …`, FERRY_USER, `user` in ferry.toml, or git's user.name".into(),
            ),
            AccessError::UnknownUser { user, wanted } => Some(match wanted {
                Some(w) => format!(
                    "an owner runs `ferry user add {}`, then `{}`",
                    shell_quote(user),
                    grant_command(user, &w.tenant, w.role)
                ),
                None => format!("an owner runs `ferry user add {}`", shell_quote(user)),
            }),
            AccessError::Forbidden {
                user, tenant, needed, ..
            } => Some(format!(
                "an owner of `{tenant}` runs `{}`",
                grant_command(user, tenant, *needed)
            )),
            AccessError::NotOwner { .. } => Some(
                "only the store's owner (its first user) may do this; run it as them: `ferry --as OWNER …`".into(),
            ),
        }
    }
}

impl AccessState {
    /// Each user with their roles, by name.
    pub fn listing(&self) -> Vec<UserListing> {
        self.users
            .iter()
            .map(|u| UserListing {
                name: u.name.clone(),
                owner: u.owner,
                grants: self
                    .grants
                    .iter()
                    .filter(|g| g.user == u.name)
                    .map(|g| TenantRole {
                        tenant: g.tenant.clone(),
                        role: g.role,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Whether the store has no users yet (everything is allowed).
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The role `user` holds on `tenant` (a global owner holds `owner` everywhere).
    pub fn role(&self, user: &str, tenant: &str) -> Option<Role> {
        if self.user(user).is_some_and(|u| u.owner) {
            return Some(Role::Owner);
        }
        self.grants
            .iter()
            .filter(|g| g.user == user && g.tenant == tenant)
            .map(|g| g.role)
            .max()
    }

    fn known<'a>(
        &self,
        actor: Option<&'a str>,
        wanted: impl FnOnce() -> Option<Wanted>,
    ) -> Result<Option<&'a str>, AccessError> {
        if self.is_open() {
            return Ok(None);
        }
        let user = actor.ok_or(AccessError::NoActor)?;
        if self.user(user).is_none() {
            return Err(AccessError::UnknownUser {
                user: user.to_string(),
                wanted: wanted(),
            });
        }
        Ok(Some(user))
    }

    /// Allow `actor` to do `action` on `tenant` if they hold at least `needed` there.
    pub fn require(
        &self,
        actor: Option<&str>,
        tenant: &str,
        needed: Role,
        action: &str,
    ) -> Result<(), AccessError> {
        let wanted = || {
            Some(Wanted {
                tenant: tenant.to_string(),
                role: needed,
                action: action.to_string(),
            })
        };
        let Some(user) = self.known(actor, wanted)? else {
            return Ok(());
        };
        let held = self.role(user, tenant);
        if held.is_some_and(|r| r >= needed) {
            Ok(())
        } else {
            Err(AccessError::Forbidden {
                user: user.to_string(),
                tenant: tenant.to_string(),
                action: action.to_string(),
                needed,
                held,
            })
        }
    }

    /// Allow `actor` to do `action` only if they are a global owner.
    pub fn require_owner(&self, actor: Option<&str>, action: &str) -> Result<(), AccessError> {
        let Some(user) = self.known(actor, || None)? else {
            return Ok(());
        };
        if self.user(user).is_some_and(|u| u.owner) {
            Ok(())
        } else {
            Err(AccessError::NotOwner {
                user: user.to_string(),
                action: action.to_string(),
            })
        }
    }

    /// Allow `actor` to grant a role on `tenant`: a global owner or an owner of the tenant.
    pub fn require_grant(&self, actor: Option<&str>, tenant: &str) -> Result<(), AccessError> {
        self.require(actor, tenant, Role::Owner, "granting roles")
    }
}

/// The longest lifetime a token may be given (ten years), in seconds.
pub const MAX_TOKEN_LIFETIME: u64 = 10 * 366 * 86_400;

/// A token lifetime that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a token lifetime; write a whole number and a unit: `30m`, `12h`, `30d`, `2w` (at most ten years)")]
pub struct LifetimeError {
    /// What was given.
    pub text: String,
}

/// A token lifetime as people write it (`90s`, `30m`, `12h`, `30d`, `2w`), in seconds.
pub fn parse_lifetime(text: &str) -> Result<u64, LifetimeError> {
    let bad = || LifetimeError {
        text: text.to_string(),
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= MAX_TOKEN_LIFETIME => Ok(secs),
        _ => Err(bad()),
    }
}

/// Where a token stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    /// It works.
    Active,
    /// Its expiry has passed.
    Expired,
    /// It was revoked.
    Revoked,
}

/// Whether `text` is a time as tokens keep it: RFC 3339 UTC to the second
/// (`2027-01-31T12:00:00Z`), the one form whose text order is time order.
pub fn is_utc_second(text: &str) -> bool {
    // `0` stands for any digit; every other byte must be as it is.
    const SHAPE: &[u8] = b"0000-00-00T00:00:00Z";
    text.len() == SHAPE.len()
        && text.bytes().zip(SHAPE).all(|(c, &s)| match s {
            b'0' => c.is_ascii_digit(),
            _ => c == s,
        })
}

impl TokenStatus {
    /// The status of a token revoked at `revoked_at` and expiring at
    /// `expires_at`, at `now` (all RFC 3339 UTC to the second, which compare as text).
    pub fn at(revoked_at: Option<&str>, expires_at: Option<&str>, now: &str) -> TokenStatus {
        if revoked_at.is_some() {
            TokenStatus::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }

    /// `active`, `expired` or `revoked`.
    pub fn name(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }
}

impl AccessState {
    /// Whether `actor` may see and revoke a token of `user` bound to `tenant`:
    /// their own, any as a store owner, and those bound to a tenant they own
    /// (the rule of [`AccessState::require_token_of`]).
    pub fn may_manage_token(&self, actor: Option<&str>, user: &str, tenant: Option<&str>) -> bool {
        self.require_token_of(actor, user, tenant, "managing tokens")
            .is_ok()
    }

    /// Allow `actor` to `action` a token of `user` bound to `tenant`: the user
    /// themselves, a store owner, or (for a token bound to a tenant) an owner
    /// of that tenant. A store with no users allows everything.
    pub fn require_token_of(
        &self,
        actor: Option<&str>,
        user: &str,
        tenant: Option<&str>,
        action: &str,
    ) -> Result<(), AccessError> {
        let Some(me) = self.known(actor, || None)? else {
            return Ok(());
        };
        if me == user {
            return Ok(());
        }
        match tenant {
            Some(t) => self.require(Some(me), t, Role::Owner, action),
            None => self.require_owner(Some(me), action),
        }
    }
}

/// Allow `actor` to promote from `from` to `to`: an admin or owner of both.
///
/// The two tenants may live in different stores; each is checked against the
/// state of its own store.
pub fn authorize_promote(
    source: &AccessState,
    target: &AccessState,
    actor: Option<&str>,
    from: &str,
    to: &str,
) -> Result<(), AccessError> {
    source.require(actor, from, Role::Admin, "promoting")?;
    target.require(actor, to, Role::Admin, "promoting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AccessState {
        AccessState {
            users: vec![
                UserRecord {
                    name: "root".into(),
                    owner: true,
                },
                UserRecord {
                    name: "ann".into(),
                    owner: false,
                },
                UserRecord {
                    name: "vic".into(),
                    owner: false,
                },
            ],
            grants: vec![
                Grant {
                    user: "ann".into(),
                    tenant: "dev".into(),
                    role: Role::Admin,
                },
                Grant {
                    user: "vic".into(),
                    tenant: "dev".into(),
                    role: Role::Viewer,
                },
                Grant {
                    user: "vic".into(),
                    tenant: "prod".into(),
                    role: Role::Owner,
                },
            ],
        }
    }

    #[test]
    fn an_open_store_allows_everything() {
        let s = AccessState::default();
        assert!(authorize_promote(&s, &s, None, "dev", "prod").is_ok());
        assert!(s.require_owner(Some("anyone"), "adding users").is_ok());
    }

    #[test]
    fn promotion_needs_admin_on_both() {
        let s = state();
        assert!(authorize_promote(&s, &s, Some("root"), "dev", "prod").is_ok());
        let e = authorize_promote(&s, &s, Some("ann"), "dev", "prod").unwrap_err();
        assert!(e.to_string().contains("tenant `prod`"), "{e}");
        assert!(e.to_string().contains("no role there"), "{e}");
        let e = authorize_promote(&s, &s, Some("vic"), "dev", "prod").unwrap_err();
        assert!(e.to_string().contains("only the viewer role"), "{e}");
        assert!(matches!(
            authorize_promote(&s, &s, Some("zed"), "dev", "prod"),
            Err(AccessError::UnknownUser { .. })
        ));
        assert_eq!(
            authorize_promote(&s, &s, None, "dev", "prod"),
            Err(AccessError::NoActor)
        );
    }

    #[test]
    fn refusals_name_the_role_and_the_grant_command_with_the_user_quoted() {
        let s = state();
        let e = s
            .require(Some("vic"), "dev", Role::Editor, "applying")
            .unwrap_err();
        assert!(e.to_string().contains("needs the editor role"), "{e}");
        assert_eq!(
            e.hint().unwrap(),
            "an owner of `dev` runs `ferry grant 'vic' dev editor`"
        );
        let e = s
            .require(Some("o'brien"), "dev", Role::Admin, "publishing")
            .unwrap_err();
        assert!(e.to_string().contains("needs the admin role"), "{e}");
        assert!(
            e.hint()
                .unwrap()
                .contains("ferry grant 'o'\\''brien' dev admin"),
            "{:?}",
            e.hint()
        );
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn token_times_are_utc_to_the_second() {
        assert!(is_utc_second("2027-01-31T12:00:00Z"));
        for bad in [
            "",
            "zzz",
            "2027-01-31",
            "2027-01-31T12:00:00+01:00",
            "2027-01-31T12:00:00.5Z",
            "2027-01-31 12:00:00Z",
            "２０２７-01-31T12:00:00Z",
        ] {
            assert!(!is_utc_second(bad), "{bad}");
        }
    }

    #[test]
    fn lifetimes_are_a_number_and_a_unit() {
        assert_eq!(parse_lifetime("12h"), Ok(12 * 3600));
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400));
        assert_eq!(parse_lifetime("2w"), Ok(14 * 86_400));
        assert_eq!(parse_lifetime("90s"), Ok(90));
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "-1d",
            "1.5h",
            "30 days",
            "99999999999999999999d",
            "4000d",
        ] {
            let e = parse_lifetime(bad).unwrap_err();
            assert!(e.to_string().contains("`30d`"), "{bad}: {e}");
        }
    }

    #[test]
    fn token_status_and_who_may_manage_a_token() {
        let now = "2026-01-02T00:00:00Z";
        assert_eq!(TokenStatus::at(None, None, now), TokenStatus::Active);
        assert_eq!(
            TokenStatus::at(None, Some("2026-01-02T00:00:01Z"), now),
            TokenStatus::Active
        );
        assert_eq!(TokenStatus::at(None, Some(now), now), TokenStatus::Expired);
        assert_eq!(
            TokenStatus::at(Some("2025-01-01T00:00:00Z"), None, now),
            TokenStatus::Revoked
        );
        let s = state();
        assert!(s.may_manage_token(Some("ann"), "ann", None));
        assert!(s.may_manage_token(Some("root"), "ann", None));
        assert!(s.may_manage_token(Some("vic"), "ann", Some("prod")));
        assert!(!s.may_manage_token(Some("vic"), "ann", Some("dev")));
        assert!(!s.may_manage_token(Some("ann"), "vic", Some("dev")));
        assert!(!s.may_manage_token(Some("vic"), "ann", None));
        assert!(!s.may_manage_token(None, "ann", None));
        let e = s
            .require_token_of(Some("ann"), "vic", Some("dev"), "revoking a token")
            .unwrap_err();
        assert!(e.to_string().contains("needs the owner role"), "{e}");
        assert!(AccessState::default().may_manage_token(None, "ann", None));
    }

    #[test]
    fn roles_order_and_names() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Editor);
        assert_eq!(Role::from_name("editor"), Some(Role::Editor));
        assert_eq!(Role::from_name("god"), None);
    }
}
