//! The SQLite store read and written as rows ([`ImageStore`]), for `ferry store copy`.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, OptionalExtension};

use super::{begin, SqliteStore};
use crate::backend::store::image::{
    refuse_existing, select, tenant_names, Cell, ImageStore, StoreImage, TableImage, TABLES,
};
use crate::backend::store::{ResourceStore, StoreError};

fn cell(v: ValueRef<'_>) -> Cell {
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Text(f.to_string()),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
    }
}

fn value(c: &Cell) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Integer(*i),
        Cell::Text(t) => Value::Text(t.clone()),
        Cell::Bytes(b) => Value::Blob(b.clone()),
    }
}

fn quoted(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ImageStore for SqliteStore {
    fn dump(&self, tenants: Option<&[String]>) -> Result<StoreImage, StoreError> {
        let mut tables = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            let mut stmt = self.connection().prepare(&format!(
                "SELECT {} FROM {}",
                quoted(spec.columns),
                spec.name
            ))?;
            let n = spec.columns.len();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get_ref(i).map(cell))
                        .collect::<Result<Vec<_>, _>>()
                })?
                .collect::<Result<Vec<_>, _>>()?;
            tables.push(TableImage {
                name: spec.name,
                rows: select(spec, rows, tenants),
            });
        }
        Ok(StoreImage {
            revision: self.revision()?,
            tenants: tenant_names(&tables),
            tables,
        })
    }

    fn load(&mut self, image: &StoreImage, replace: bool) -> Result<(), StoreError> {
        let tx = begin(self.connection_mut(), "")?;
        let mut existing = Vec::new();
        for t in &image.tenants {
            let found: Option<i64> = tx
                .query_row("SELECT 1 FROM tenants WHERE name = ?1", [t], |r| r.get(0))
                .optional()?;
            if found.is_some() {
                existing.push(t.clone());
            }
        }
        if !existing.is_empty() && !replace {
            return Err(refuse_existing(&existing));
        }
        for spec in TABLES.iter().rev() {
            if let Some(col) = spec.tenant_column {
                for t in &existing {
                    tx.execute(
                        &format!("DELETE FROM {} WHERE \"{col}\" = ?1", spec.name),
                        [t],
                    )?;
                }
            }
        }
        for (spec, table) in TABLES.iter().zip(&image.tables) {
            let marks = (1..=spec.columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = tx.prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                spec.name,
                quoted(spec.columns)
            ))?;
            for row in &table.rows {
                stmt.execute(params_from_iter(row.iter().map(value)))?;
            }
        }
        for t in &image.tenants {
            super::recount(&tx, t)?;
        }
        let current: String =
            tx.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get(0)
            })?;
        let next = current.parse::<u64>().unwrap_or(0).max(image.revision);
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'revision'",
            [next.to_string()],
        )?;
        // The loaded tenants carry another store's revisions: the load
        // count is part of every staging stamp, so none repeats.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('loads', '1') \
             ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }
}
