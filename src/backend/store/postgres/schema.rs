//! The PostgreSQL schema as numbered migrations, run at open.
//!
//! `ferry_schema` records each migration applied. Opening the store takes a
//! transaction-scoped advisory lock, so instances starting together run the
//! migrations once, one after the other; applies every migration newer than
//! the database in that one transaction (PostgreSQL's DDL is
//! transactional: a failure leaves the schema as it was); and refuses a
//! database whose schema is newer than this binary knows.

use postgres::Client;

use super::super::StoreError;

/// The advisory lock key that serialises migrations (any fixed number; "ferry" in ASCII).
const MIGRATION_LOCK: i64 = 0x0066_6572_7279;

/// The migrations, in order: (version, SQL). Never edit one that has shipped; add the next.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (
  key   TEXT COLLATE "C" PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('revision', 0);
CREATE TABLE tenants (
  name        TEXT COLLATE "C" PRIMARY KEY,
  environment TEXT COLLATE "C",
  recipient   TEXT COLLATE "C" NOT NULL,
  identity    TEXT COLLATE "C" NOT NULL,
  revision    BIGINT NOT NULL,
  last_commit TEXT COLLATE "C",
  created_at  TEXT COLLATE "C" NOT NULL
);
CREATE TABLE resources (
  tenant       TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
  id           TEXT COLLATE "C" NOT NULL,
  kind         TEXT COLLATE "C" NOT NULL,
  name         TEXT COLLATE "C" NOT NULL,
  document     TEXT COLLATE "C" NOT NULL,
  content      BYTEA,
  content_hash TEXT COLLATE "C" NOT NULL,
  file_hash    TEXT COLLATE "C" NOT NULL,
  refs         TEXT COLLATE "C" NOT NULL,
  revision     BIGINT NOT NULL,
  updated_at   TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE TABLE versions (
  tenant       TEXT COLLATE "C" NOT NULL,
  id           TEXT COLLATE "C" NOT NULL,
  version      BIGINT NOT NULL,
  document     TEXT COLLATE "C" NOT NULL,
  content      BYTEA,
  content_hash TEXT COLLATE "C" NOT NULL,
  change_id    TEXT COLLATE "C",
  published_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, id, version)
);
CREATE TABLE publishes (
  tenant          TEXT COLLATE "C" NOT NULL,
  number          BIGINT NOT NULL,
  change_track_id TEXT COLLATE "C" NOT NULL,
  agent           TEXT COLLATE "C",
  published_by    TEXT COLLATE "C" NOT NULL,
  published_at    TEXT COLLATE "C" NOT NULL,
  summary         TEXT COLLATE "C" NOT NULL,
  message         TEXT COLLATE "C" NOT NULL,
  tag             TEXT COLLATE "C",
  commit_id       TEXT COLLATE "C",
  PRIMARY KEY (tenant, number)
);
CREATE TABLE git_applied (
  tenant   TEXT COLLATE "C" PRIMARY KEY,
  revision BIGINT NOT NULL
);
CREATE TABLE applied_resources (
  tenant   TEXT COLLATE "C" NOT NULL,
  id       TEXT COLLATE "C" NOT NULL,
  kind     TEXT COLLATE "C" NOT NULL,
  name     TEXT COLLATE "C" NOT NULL,
  revision BIGINT NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE TABLE users (
  name       TEXT COLLATE "C" PRIMARY KEY,
  owner      BOOLEAN NOT NULL DEFAULT FALSE,
  created_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE grants (
  "user" TEXT COLLATE "C" NOT NULL REFERENCES users(name),
  tenant TEXT COLLATE "C" NOT NULL,
  role   TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY ("user", tenant)
);
CREATE TABLE tokens (
  hash       TEXT COLLATE "C" PRIMARY KEY,
  "user"     TEXT COLLATE "C" NOT NULL REFERENCES users(name),
  tenant     TEXT COLLATE "C",
  created_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE sync_records (
  tenant       TEXT COLLATE "C" NOT NULL,
  local_id     TEXT COLLATE "C" NOT NULL,
  source_key   TEXT COLLATE "C" NOT NULL,
  origin_id    TEXT COLLATE "C" NOT NULL,
  revision     BIGINT NOT NULL,
  content_hash TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, local_id, source_key)
);
"#,
    ),
    (
        2,
        r#"
CREATE INDEX resources_by_name ON resources (tenant, kind, name);
CREATE INDEX versions_by_change ON versions (tenant, change_id);
CREATE INDEX publishes_by_change ON publishes (tenant, change_track_id);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE tokens ADD COLUMN id TEXT COLLATE "C";
ALTER TABLE tokens ADD COLUMN expires_at TEXT COLLATE "C";
ALTER TABLE tokens ADD COLUMN last_used_at TEXT COLLATE "C";
ALTER TABLE tokens ADD COLUMN revoked_at TEXT COLLATE "C";
UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12);
CREATE UNIQUE INDEX tokens_by_id ON tokens (id);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE tenant_variables (
  tenant     TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
  name       TEXT COLLATE "C" NOT NULL,
  value      TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, name)
);
"#,
    ),
    (
        5,
        r#"
CREATE TABLE sessions (
  hash       TEXT COLLATE "C" PRIMARY KEY,
  "user"     TEXT COLLATE "C" NOT NULL REFERENCES users(name),
  token_hash TEXT COLLATE "C" NOT NULL,
  expires_at BIGINT NOT NULL
);
"#,
    ),
    (
        6,
        r#"
ALTER TABLE resources ADD COLUMN created_by TEXT COLLATE "C";
ALTER TABLE resources ADD COLUMN updated_by TEXT COLLATE "C";
"#,
    ),
    (
        7,
        r#"
CREATE TABLE drift_journal (
  tenant TEXT COLLATE "C" NOT NULL,
  id     TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, id)
);
INSERT INTO drift_journal (tenant, id)
  SELECT r.tenant, r.id FROM resources r JOIN git_applied g ON g.tenant = r.tenant
  LEFT JOIN applied_resources a ON a.tenant = r.tenant AND a.id = r.id
  WHERE a.id IS NULL OR a.revision != r.revision OR a.name != r.name OR a.kind != r.kind
  UNION
  SELECT a.tenant, a.id FROM applied_resources a
  LEFT JOIN resources r ON r.tenant = a.tenant AND r.id = a.id WHERE r.id IS NULL;
"#,
    ),
    (
        8,
        r#"
ALTER TABLE tenants ADD COLUMN resource_count BIGINT NOT NULL DEFAULT 0;
UPDATE tenants t SET resource_count = (SELECT COUNT(*) FROM resources r WHERE r.tenant = t.name);
"#,
    ),
];

/// The schema version this binary writes.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// What opening did to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0 for an empty database).
    pub from: i32,
    /// The version now.
    pub to: i32,
}

/// Apply every migration the database lacks, in one transaction; refuse a newer schema.
pub fn migrate(client: &mut Client) -> Result<Migrated, StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ferry_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let from: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ferry_schema", &[])?
        .get(0);
    if from > latest() {
        return Err(StoreError::SchemaTooNew {
            found: from.unsigned_abs(),
            known: latest().unsigned_abs(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO ferry_schema (version, applied_at) VALUES ($1, $2)",
            &[version, &super::super::now_rfc3339()],
        )?;
    }
    tx.commit()?;
    Ok(Migrated { from, to: latest() })
}
