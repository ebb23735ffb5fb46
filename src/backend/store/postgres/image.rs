//! The PostgreSQL store read and written as rows ([`ImageStore`]), for `ferry store copy`.
//!
//! Values are read by their column type (booleans become 0 and 1, as SQLite
//! keeps them) and written as the target column's type, so one image moves
//! either way between the back ends.

use postgres::types::{ToSql, Type};
use postgres::Row;

use super::super::image::{
    refuse_existing, select, tenant_names, Cell, ImageStore, StoreImage, TableImage, TABLES,
};
use super::super::StoreError;
use super::{signed, PostgresStore};

fn cell(row: &Row, i: usize) -> Result<Cell, StoreError> {
    let ty = row.columns()[i].type_().clone();
    let c = if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?
            .map_or(Cell::Null, |b| Cell::Int(i64::from(b)))
    } else if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?
            .map_or(Cell::Null, Cell::Int)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map_or(Cell::Null, |n| Cell::Int(i64::from(n)))
    } else if ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Cell::Null, Cell::Bytes)
    } else {
        row.try_get::<_, Option<String>>(i)?
            .map_or(Cell::Null, Cell::Text)
    };
    Ok(c)
}

/// A value as the parameter type the target column wants.
fn param(c: &Cell, ty: &Type) -> Box<dyn ToSql + Sync> {
    match (c, ty) {
        (Cell::Int(i), t) if *t == Type::BOOL => Box::new(*i != 0),
        (Cell::Int(i), t) if *t == Type::INT4 => Box::new(i32::try_from(*i).unwrap_or(i32::MAX)),
        (Cell::Int(i), _) => Box::new(*i),
        (Cell::Text(s), _) => Box::new(s.clone()),
        (Cell::Bytes(b), _) => Box::new(b.clone()),
        (Cell::Null, t) if *t == Type::BOOL => Box::new(None::<bool>),
        (Cell::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (Cell::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (Cell::Null, _) => Box::new(None::<String>),
    }
}

fn quoted(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ImageStore for PostgresStore {
    fn dump(&self, tenants: Option<&[String]>) -> Result<StoreImage, StoreError> {
        let mut client = self.client()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for spec in TABLES {
            let rows = tx.query(
                &format!("SELECT {} FROM {}", quoted(spec.columns), spec.name),
                &[],
            )?;
            let rows = rows
                .iter()
                .map(|r| (0..spec.columns.len()).map(|i| cell(r, i)).collect())
                .collect::<Result<Vec<Vec<Cell>>, _>>()?;
            tables.push(TableImage {
                name: spec.name,
                rows: select(spec, rows, tenants),
            });
        }
        let revision: i64 = tx
            .query_one("SELECT value FROM meta WHERE key = 'revision'", &[])?
            .get(0);
        tx.commit()?;
        Ok(StoreImage {
            revision: super::unsigned(revision),
            tenants: tenant_names(&tables),
            tables,
        })
    }

    fn load(&mut self, image: &StoreImage, replace: bool) -> Result<(), StoreError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        tx.batch_execute("LOCK TABLE tenants, users IN SHARE ROW EXCLUSIVE MODE")?;
        let existing: Vec<String> = tx
            .query(
                "SELECT name FROM tenants WHERE name = ANY($1) ORDER BY name",
                &[&image.tenants],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !existing.is_empty() && !replace {
            return Err(refuse_existing(&existing));
        }
        for spec in TABLES.iter().rev() {
            if let Some(col) = spec.tenant_column {
                tx.execute(
                    &format!("DELETE FROM {} WHERE \"{col}\" = ANY($1)", spec.name),
                    &[&existing],
                )?;
            }
        }
        for (spec, table) in TABLES.iter().zip(&image.tables) {
            let marks = (1..=spec.columns.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let stmt = tx.prepare(&format!(
                "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                spec.name,
                quoted(spec.columns)
            ))?;
            let types = stmt.params().to_vec();
            for row in &table.rows {
                let params: Vec<Box<dyn ToSql + Sync>> =
                    row.iter().zip(&types).map(|(c, t)| param(c, t)).collect();
                let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
                tx.execute(&stmt, &refs)?;
            }
        }
        tx.execute(
            "UPDATE tenants t SET resource_count = \
               (SELECT COUNT(*) FROM resources r WHERE r.tenant = t.name) WHERE t.name = ANY($1)",
            &[&image.tenants],
        )?;
        tx.execute(
            "UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'revision'",
            &[&signed(image.revision)],
        )?;
        tx.commit()?;
        Ok(())
    }
}
