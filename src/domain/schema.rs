//! JSON Schemas of the resource files, generated from the model types.
//!
//! `schemas/<kind>.schema.json` in the project (and in every config repo
//! that wants editor completion) is exactly what [`generate`] returns; a
//! test fails when the committed files are stale, and `ferry schemas --out
//! DIR` writes them.

use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::domain::model::{
    AgentSpec, ConnectionSpec, DocumentSpec, EvaluationSpec, Kind, KnowledgeBaseSpec, Metadata,
    ToolSpec, WorkflowSpec,
};

#[derive(JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct File<S: JsonSchema> {
    /// Always `ferry/v1`.
    api_version: String,
    /// The resource kind.
    kind: String,
    /// Identity and bookkeeping.
    metadata: Metadata,
    /// The kind-specific body.
    spec: S,
}

fn schema_of<S: JsonSchema>(kind: Kind) -> Value {
    let schema = schemars::schema_for!(File<S>);
    let mut v = serde_json::to_value(&schema).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert(
            "$id".into(),
            json!(format!(
                "https://ferry.dev/schemas/{}.schema.json",
                kind.schema_stem()
            )),
        );
        o.insert(
            "title".into(),
            json!(format!("ferry {} resource", kind.name())),
        );
        o.insert(
            "description".into(),
            json!(format!(
                "One {} of a ferry tenant tree, at `{}/<name>.yaml`.",
                kind.name(),
                kind.step()
            )),
        );
        if let Some(Value::Object(props)) = o.get_mut("properties") {
            props.insert(
                "apiVersion".into(),
                json!({"description": "Always `ferry/v1`.", "const": crate::domain::model::API_VERSION}),
            );
            props.insert(
                "kind".into(),
                json!({"description": "The resource kind.", "const": kind.name()}),
            );
        }
    }
    v
}

/// The schema files: `(file name, pretty JSON with a final newline)`, in step order.
pub fn generate() -> Vec<(String, String)> {
    Kind::ALL
        .iter()
        .map(|k| {
            let v = match k {
                Kind::Document => schema_of::<DocumentSpec>(*k),
                Kind::Connection => schema_of::<ConnectionSpec>(*k),
                Kind::KnowledgeBase => schema_of::<KnowledgeBaseSpec>(*k),
                Kind::Tool => schema_of::<ToolSpec>(*k),
                Kind::Workflow => schema_of::<WorkflowSpec>(*k),
                Kind::Agent => schema_of::<AgentSpec>(*k),
                Kind::Evaluation => schema_of::<EvaluationSpec>(*k),
            };
            let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
            text.push('\n');
            (format!("{}.schema.json", k.schema_stem()), text)
        })
        .collect()
}
