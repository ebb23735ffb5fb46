//! Free-form JSON inside a spec: a tool's input schema, the settings of a
//! tool action, a workflow step or a guardrail.
//!
//! ferry does not look inside these values; it keeps them, compares them and
//! writes them back. A [`FreeForm`] holds one as its canonical JSON text
//! (keys sorted, no spaces), not as a `serde_json::Value` tree: a tree keeps
//! every object in a B-tree node of eleven slots (about 600 bytes for an
//! object of two keys), and a tenant of 100,000 resources held a third of
//! its decoded bytes in such nodes. The text is parsed back into a tree only
//! for the moment it is written out or inspected.
//!
//! On the outside nothing changes: it deserializes from, and serializes to,
//! any serde format exactly as the `serde_json::Value` it holds, and its JSON
//! Schema is that of any value.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A free-form JSON value, kept as its canonical JSON text.
#[derive(Clone, PartialEq, Eq)]
pub struct FreeForm(Box<str>);

impl FreeForm {
    /// The value as a JSON tree.
    pub fn to_value(&self) -> Value {
        // The text was written from a value by `From<&Value>`, so it parses.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The canonical JSON text of the value.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// A map of settings (a `config` field) as one JSON object.
    pub fn object_of(settings: &BTreeMap<String, FreeForm>) -> Value {
        Value::Object(
            settings
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

impl From<&Value> for FreeForm {
    fn from(value: &Value) -> FreeForm {
        // A `Value` writes its object keys in sorted order: the text is canonical.
        FreeForm(value.to_string().into_boxed_str())
    }
}

impl From<Value> for FreeForm {
    fn from(value: Value) -> FreeForm {
        FreeForm::from(&value)
    }
}

impl fmt::Debug for FreeForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FreeForm({})", self.0)
    }
}

impl Serialize for FreeForm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value: Value = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FreeForm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FreeForm, D::Error> {
        Value::deserialize(deserializer).map(FreeForm::from)
    }
}

impl JsonSchema for FreeForm {
    fn inline_schema() -> bool {
        Value::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        Value::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        Value::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Value::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_text_is_canonical_whatever_the_order_it_was_read_in() {
        let a: FreeForm =
            serde_json::from_str(r#"{"b": [1, {"d": 2, "c": 3}], "a": null}"#).expect("parses");
        let b = FreeForm::from(json!({"a": null, "b": [1, {"c": 3, "d": 2}]}));
        assert_eq!(a, b);
        assert_eq!(a.as_json(), r#"{"a":null,"b":[1,{"c":3,"d":2}]}"#);
    }

    #[test]
    fn it_serializes_as_the_value_it_holds_in_any_format() {
        let value = json!({"type": "object", "required": ["id"], "n": 1.5, "big": u64::MAX});
        let held = FreeForm::from(&value);
        assert_eq!(
            serde_json::to_string(&held).expect("json"),
            serde_json::to_string(&value).expect("json")
        );
        assert_eq!(held.to_value(), value);
        let yaml = crate::domain::yaml::encode(&held).expect("yaml");
        let back: FreeForm = crate::domain::yaml::decode(&yaml).expect("yaml back");
        assert_eq!(back, held);
    }
}
