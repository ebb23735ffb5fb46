//! The PostgreSQL store: the store several `ferry serve` instances share.
//!
//! `postgres://USER@HOST:PORT/DB` (or `postgresql://…`, or a Unix socket
//! folder with `?host=/path`) opens one connection with the `postgres`
//! crate's blocking client, the only module of ferry naming it. Opening runs
//! the versioned migrations of [`schema`] and refuses a schema newer than
//! this binary. The semantics are those of the SQLite store: every write is
//! one transaction that first locks the tenant's row (`SELECT … FOR
//! UPDATE`), so a second apply to the same tenant waits, then finds the
//! tenant revision moved and is refused as stale; every write bumps the
//! store revision (one row, locked last, so writers never deadlock) and
//! records it on the tenant. Read snapshots are `REPEATABLE READ READ ONLY`
//! transactions. A connection lost to a restart of the database is opened
//! again at the next call; the call that found it lost fails as
//! [`StoreError::Unavailable`].
//!
//! The queries live by part of the store contract: [`resources`] (tenants,
//! drafts, the one write), [`publish`] (versions, the publish log, drift),
//! [`access`] (users, grants, tokens, sync records); `tenant_admin.rs`
//! implements [`super::TenantAdmin`] (tenant variables, tenant deletion).

pub mod access;
pub mod image;
pub mod publish;
pub mod resources;
pub mod schema;
mod tenant_admin;

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

use super::StoreError;

/// Whether `url` names a PostgreSQL store.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with any password taken out, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The PostgreSQL store: one connection, opened again when the database dropped it.
pub struct PostgresStore {
    config: Config,
    url: String,
    client: Mutex<Client>,
    /// Statements prepared on the connection (by their text), for the reads
    /// every request makes: parsed and planned once, not on every call.
    statements: Mutex<std::collections::HashMap<&'static str, postgres::Statement>>,
    migrated: schema::Migrated,
    fault: Option<WriteFault>,
    rows_read: std::sync::atomic::AtomicU64,
}

impl PostgresStore {
    /// Connect to the database at `url` and bring its schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| StoreError::BadUrl {
            url: format!("{} ({e})", redact(url)),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("ferry");
        }
        let url = redact(url);
        let mut client = connect(&config, &url)?;
        let migrated = schema::migrate(&mut client)?;
        Ok(PostgresStore {
            config,
            url,
            client: Mutex::new(client),
            statements: Mutex::new(std::collections::HashMap::new()),
            migrated,
            fault: None,
            rows_read: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Inject a fault into every later [`ResourceStore::write`] (tests only).
    #[doc(hidden)]
    pub fn set_write_fault(&mut self, fault: Option<WriteFault>) {
        self.fault = fault;
    }

    /// The schema versions before and after the migrations run at open.
    pub fn migrated(&self) -> schema::Migrated {
        self.migrated
    }

    /// The connection, opened again first when the database had dropped it.
    pub(crate) fn client(&self) -> Result<MutexGuard<'_, Client>, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_closed() {
            *guard = connect(&self.config, &self.url)?;
            // What was prepared went with the old connection.
            self.statements
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        Ok(guard)
    }

    /// Run `sql` with a statement prepared once on the connection.
    pub(crate) fn query_prepared(
        &self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let mut client = self.client()?;
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
            .cloned();
        let statement = match cached {
            Some(s) => s,
            None => {
                let s = client.prepare(sql)?;
                self.statements
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(sql, s.clone());
                s
            }
        };
        Ok(client.query(&statement, params)?)
    }
}

/// How a store function runs a query: [`PostgresStore::query_prepared`].
pub(crate) type Query<'a> = dyn FnMut(
        &'static str,
        &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError>
    + 'a;

/// Open one connection with the session settings every store call relies on.
fn connect(config: &Config, url: &str) -> Result<Client, StoreError> {
    let mut client = config.connect(NoTls).map_err(|e| StoreError::Unavailable {
        reason: format!("cannot connect to {url}: {}", describe(&e)),
    })?;
    // A writer waits at most this long for another's tenant lock, then is told it is busy.
    client
        .batch_execute("SET lock_timeout = '30s'; SET client_min_messages = warning")
        .map_err(StoreError::from)?;
    Ok(client)
}

/// The database's own message for an error, without the driver's wrapping.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        let code = e.code().cloned();
        let lost = e.is_closed()
            || e.as_db_error().is_none() && std::error::Error::source(&e).is_some()
            || code.as_ref().is_some_and(|c| {
                *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CRASH_SHUTDOWN
                    || *c == SqlState::CANNOT_CONNECT_NOW
                    || c.code().starts_with("08")
            });
        if lost {
            return StoreError::Unavailable {
                reason: describe(&e),
            };
        }
        if code.as_ref().is_some_and(|c| {
            *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::T_R_DEADLOCK_DETECTED
        }) {
            return StoreError::Busy {
                tenant: String::new(),
            };
        }
        StoreError::Database {
            message: describe(&e),
        }
    }
}

/// Name the tenant in a [`StoreError::Busy`] made from a driver error.
pub(crate) fn for_tenant(tenant: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Busy { .. } => StoreError::Busy {
            tenant: tenant.to_string(),
        },
        other => other,
    }
}

/// A stored integer as the unsigned number the store contract uses.
pub(crate) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// An unsigned number as the `BIGINT` PostgreSQL stores.
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

use super::{
    AccessStore, CommitChange, DraftStamp, IndexKeys, PublishStore, ResourceStore, SessionRecord,
    SyncRecord, SyncStore, TenantRecord, TokenRecord, VersionRecord, WriteBatch, WriteFault,
};
use crate::domain::access::{AccessState, Role, UserRecord};
use crate::domain::model::{Kind, Resource};
use crate::domain::plan::Absent;
use crate::domain::publish::{PublishRecord, PublishedVersion, VersionPair};
use crate::domain::secrets::KeyPair;
use crate::domain::state::{Index, IndexEntry};
use crate::domain::validate::IdNames;

impl PostgresStore {
    fn count_rows(&self, n: usize) {
        self.rows_read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ResourceStore for PostgresStore {
    fn tenant_admin(&self) -> Option<&dyn super::TenantAdmin> {
        Some(self)
    }

    fn tenant_admin_mut(&mut self) -> Option<&mut dyn super::TenantAdmin> {
        Some(self)
    }

    fn begin_read(&self) -> Result<(), StoreError> {
        resources::begin_read(&mut *self.client()?)
    }

    fn end_read(&self) -> Result<(), StoreError> {
        resources::end_read(&mut *self.client()?)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        resources::revision(&mut *self.client()?)
    }

    fn create_tenant(
        &mut self,
        name: &str,
        environment: Option<&str>,
        keys: &KeyPair,
    ) -> Result<TenantRecord, StoreError> {
        resources::create_tenant(&mut *self.client()?, name, environment, keys)
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        resources::tenants(&mut *self.client()?)
    }

    fn tenant(&self, name: &str) -> Result<TenantRecord, StoreError> {
        resources::tenant(&mut *self.client()?, name)
    }

    fn tenant_revision(&self, tenant: &str) -> Result<u64, StoreError> {
        resources::tenant_revision(&mut |q, p| self.query_prepared(q, p), tenant)
    }

    fn staging_stamp(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        resources::staging_stamp(&mut |q, p| self.query_prepared(q, p), tenant).map(Some)
    }

    fn identity(&self, tenant: &str) -> Result<String, StoreError> {
        resources::identity(&mut *self.client()?, tenant)
    }

    fn index(&self, tenant: &str) -> Result<(u64, Index), StoreError> {
        let (revision, index) = resources::index(&mut *self.client()?, tenant)?;
        self.count_rows(index.len());
        Ok((revision, index))
    }

    fn id_names(&self, tenant: &str) -> Result<IdNames, StoreError> {
        let names = resources::id_names(&mut *self.client()?, tenant)?;
        self.count_rows(names.len());
        Ok(names.into_iter().collect())
    }

    fn kind_counts(&self, tenant: &str) -> Result<Vec<(Kind, usize)>, StoreError> {
        resources::kind_counts(&mut *self.client()?, tenant)
    }

    fn index_entries(
        &self,
        tenant: &str,
        keys: &IndexKeys,
    ) -> Result<(u64, Vec<IndexEntry>), StoreError> {
        let (revision, entries) =
            resources::index_entries(&mut |q, p| self.query_prepared(q, p), tenant, keys)?;
        self.count_rows(entries.len());
        Ok((revision, entries))
    }

    fn reference_closure(&self, tenant: &str, root: &str) -> Result<Vec<String>, StoreError> {
        let ids =
            resources::reference_closure(&mut |q, p| self.query_prepared(q, p), tenant, root)?;
        self.count_rows(ids.len());
        Ok(ids)
    }

    fn rows_read(&self) -> u64 {
        self.rows_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn resource_count(&self, tenant: &str) -> Result<usize, StoreError> {
        resources::resource_count(&mut *self.client()?, tenant)
    }

    fn drafts(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        let drafts = resources::drafts(&mut |q, p| self.query_prepared(q, p), tenant, ids)?;
        self.count_rows(drafts.len());
        Ok(drafts)
    }

    fn all_drafts(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        let drafts = resources::all_drafts(&mut *self.client()?, tenant)?;
        self.count_rows(drafts.len());
        Ok(drafts)
    }

    fn draft_stamps(&self, tenant: &str, ids: &[String]) -> Result<Vec<DraftStamp>, StoreError> {
        resources::draft_stamps(&mut *self.client()?, tenant, ids)
    }

    fn write(&mut self, tenant: &str, batch: &WriteBatch<'_>) -> Result<u64, StoreError> {
        resources::write(&mut *self.client()?, tenant, batch, self.fault)
    }
}

impl AccessStore for PostgresStore {
    fn access(&self) -> Result<AccessState, StoreError> {
        access::access(&mut |q, p| self.query_prepared(q, p))
    }

    fn add_user(&mut self, name: &str) -> Result<UserRecord, StoreError> {
        access::add_user(&mut *self.client()?, name)
    }

    fn add_token(
        &mut self,
        hash: &str,
        user: &str,
        tenant: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<TokenRecord, StoreError> {
        access::add_token(&mut *self.client()?, hash, user, tenant, expires_at)
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        access::token(&mut |q, p| self.query_prepared(q, p), hash)
    }

    fn add_session(&mut self, session: &SessionRecord) -> Result<(), StoreError> {
        access::add_session(&mut *self.client()?, session)
    }

    fn session(&self, hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        access::session(&mut *self.client()?, hash)
    }

    fn remove_session(&mut self, hash: &str, now: i64) -> Result<bool, StoreError> {
        access::remove_session(&mut *self.client()?, hash, now)
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        access::tokens(&mut *self.client()?)
    }

    fn revoke_token(&mut self, id: &str, at: &str) -> Result<TokenRecord, StoreError> {
        access::revoke_token(&mut *self.client()?, id, at)
    }

    fn touch_token(&mut self, hash: &str, at: &str, not_before: &str) -> Result<bool, StoreError> {
        access::touch_token(&mut *self.client()?, hash, at, not_before)
    }

    fn grant(&mut self, user: &str, tenant: &str, role: Role) -> Result<(), StoreError> {
        access::grant(&mut *self.client()?, user, tenant, role)
    }
}

impl PublishStore for PostgresStore {
    fn versions(&self, tenant: &str, ids: &[String]) -> Result<Vec<VersionRecord>, StoreError> {
        publish::versions(&mut *self.client()?, tenant, ids)
    }

    fn put_versions(&mut self, tenant: &str, versions: &[VersionRecord]) -> Result<(), StoreError> {
        publish::put_versions(&mut *self.client()?, tenant, versions)
    }

    fn production(&self, tenant: &str) -> Result<Vec<Resource>, StoreError> {
        publish::production(&mut |q, p| self.query_prepared(q, p), tenant)
    }

    fn production_of(&self, tenant: &str, ids: &[String]) -> Result<Vec<Resource>, StoreError> {
        publish::production_of(&mut |q, p| self.query_prepared(q, p), tenant, ids)
    }

    fn publish(
        &mut self,
        tenant: &str,
        record: &PublishRecord,
        versions: &[PublishedVersion],
    ) -> Result<(), StoreError> {
        publish::publish(&mut *self.client()?, tenant, record, versions)
    }

    fn publishes(&self, tenant: &str) -> Result<Vec<PublishRecord>, StoreError> {
        publish::publishes(&mut *self.client()?, tenant)
    }

    fn next_publish_number(&self, tenant: &str) -> Result<u64, StoreError> {
        publish::next_publish_number(&mut *self.client()?, tenant)
    }

    fn has_publish(&self, tenant: &str, change_track_id: &str) -> Result<bool, StoreError> {
        publish::has_publish(&mut *self.client()?, tenant, change_track_id)
    }

    fn publish_changes(
        &self,
        tenant: &str,
        change_track_id: &str,
    ) -> Result<Vec<VersionPair>, StoreError> {
        publish::publish_changes(&mut *self.client()?, tenant, change_track_id)
    }

    fn drift(&self, tenant: &str) -> Result<Vec<Absent>, StoreError> {
        publish::drift(&mut *self.client()?, tenant)
    }

    fn changes_since_commit(&self, tenant: &str) -> Result<Option<Vec<CommitChange>>, StoreError> {
        let changes = publish::changes_since_commit(&mut *self.client()?, tenant)?;
        self.count_rows(changes.as_ref().map_or(0, Vec::len));
        Ok(changes)
    }
}

impl SyncStore for PostgresStore {
    fn sync_records(&self, tenant: &str, source_key: &str) -> Result<Vec<SyncRecord>, StoreError> {
        access::sync_records(&mut *self.client()?, tenant, source_key)
    }

    fn record_syncs(
        &mut self,
        tenant: &str,
        source_key: &str,
        records: &[SyncRecord],
    ) -> Result<(), StoreError> {
        access::record_syncs(&mut *self.client()?, tenant, source_key, records)
    }
}
