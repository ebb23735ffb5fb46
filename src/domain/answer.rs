//! The JSON shapes every front end answers in, so the CLI's `--output json`
//! and the HTTP API say the same thing the same way: a list is
//! `{"items": [...]}` ([`Items`]), an error is `{"error": {"code",
//! "message", "hint"}}` ([`ErrorAnswer`]), keys are camelCase as in the
//! YAML. Front ends fill these types and print or send them; they invent
//! no shape of their own.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A list answer: `{"items": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Items<T> {
    /// The entries, in the order the use case gives them.
    pub items: Vec<T>,
}

impl<T> Items<T> {
    /// Wrap a list.
    pub fn new(items: Vec<T>) -> Items<T> {
        Items { items }
    }
}

/// What went wrong: a stable code, a message for people, a hint if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `tenant_not_found`.
    pub code: String,
    /// What went wrong, for people (never a secret value).
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// An error answer: `{"error": {...}}`, plus top-level fields some errors
/// carry (`hasChanges: false`, `diagnostics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// The error.
    pub error: ErrorDetail,
    /// Extra top-level fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorAnswer {
    /// An error with a code, a message and maybe a hint.
    pub fn new(code: &str, message: impl Into<String>, hint: Option<String>) -> ErrorAnswer {
        ErrorAnswer {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                hint,
            },
            extra: Map::new(),
        }
    }

    /// Add a top-level field.
    pub fn with(mut self, key: &str, value: Value) -> ErrorAnswer {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// The answer as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_has_the_one_shape() {
        let e = ErrorAnswer::new("stale", "the store changed", Some("plan again".into()))
            .with("hasChanges", false.into());
        assert_eq!(
            e.to_value(),
            serde_json::json!({"error": {"code": "stale", "message": "the store changed", "hint": "plan again"}, "hasChanges": false})
        );
        let bare = ErrorAnswer::new("x", "y", None).to_value();
        assert!(bare["error"].get("hint").is_none());
        assert_eq!(
            serde_json::to_value(Items::new(vec![1, 2])).unwrap(),
            serde_json::json!({"items": [1, 2]})
        );
    }
}
