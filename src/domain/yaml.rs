//! The only module that names the YAML crate.
//!
//! It turns the bytes of one resource file into a [`ResourceDoc`] and back.
//! Decoding is strict and bounded: duplicate keys are errors, alias expansion
//! and nesting have budgets (so an alias bomb is refused, not expanded), and
//! every error carries the line and column the parser stopped at. Encoding is
//! canonical: fields in the order of the model structs, block collections,
//! literal block scalars for multi-line text, LF endings, a schema comment on
//! the first line. Decoding the encoding gives the same value back.
//!
//! The envelope (`apiVersion`, `kind`, `metadata`, `spec`) is read by hand so
//! that the spec is deserialized straight into the struct of its kind, with
//! the parser's own locations, in one pass.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::domain::model::{Kind, Metadata, Spec};

/// A decoding error with the position the parser reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What is wrong, without the position.
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
}

/// One resource file, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDoc {
    /// The declared `apiVersion`.
    pub api_version: String,
    /// Identity and bookkeeping.
    pub metadata: Metadata,
    /// The kind-specific body; its variant is the declared kind.
    pub spec: Spec,
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_documents: 1,
            max_aliases: 100,
            max_anchors: 100,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 100,
        },
    }
}

fn to_yaml_error(e: &serde_saphyr::Error) -> YamlError {
    let loc = e.location();
    let mut message = e
        .render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        })
        .trim()
        .to_string();
    // The plain rendering appends " at line L column C"; the caller prints
    // the position itself, next to the file name.
    if let Some(i) = message.rfind(" at line ") {
        let tail = &message[i + " at line ".len()..];
        let is_position = tail
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .all(|w| w == "column" || w.bytes().all(|b| b.is_ascii_digit()));
        if is_position {
            message.truncate(i);
        }
    }
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        message.truncate(i);
    }
    YamlError {
        message,
        line: loc.as_ref().map(|l| l.line()).filter(|l| *l > 0),
        column: loc.as_ref().map(|l| l.column()).filter(|c| *c > 0),
    }
}

/// Decode one resource file.
pub fn decode_resource(text: &str) -> Result<ResourceDoc, YamlError> {
    let env: Envelope =
        serde_saphyr::from_str_with_options(text, options()).map_err(|e| to_yaml_error(&e))?;
    let kind = env.kind.ok_or_else(|| YamlError {
        message: "missing field `kind`".into(),
        line: None,
        column: None,
    })?;
    let api_version = env.api_version.ok_or_else(|| YamlError {
        message: "missing field `apiVersion`".into(),
        line: None,
        column: None,
    })?;
    let metadata = env.metadata.ok_or_else(|| YamlError {
        message: "missing field `metadata`".into(),
        line: None,
        column: None,
    })?;
    let spec = match env.spec {
        Some(SpecSlot::Typed(spec)) => spec,
        Some(SpecSlot::Untyped(value)) => Spec::from_json(kind, value).map_err(|e| YamlError {
            message: format!("spec: {e}"),
            line: None,
            column: None,
        })?,
        None => {
            return Err(YamlError {
                message: "missing field `spec`".into(),
                line: None,
                column: None,
            })
        }
    };
    if spec.kind() != kind {
        return Err(YamlError {
            message: format!("spec does not match kind `{kind}`"),
            line: None,
            column: None,
        });
    }
    Ok(ResourceDoc {
        api_version,
        metadata,
        spec,
    })
}

/// Decode any value from YAML text (used for small settings files read as YAML).
pub fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str_with_options(text, options()).map_err(|e| to_yaml_error(&e))
}

/// The first line of every resource file: the schema the editor validates against.
pub fn schema_comment(kind: Kind) -> String {
    format!(
        "# yaml-language-server: $schema=../../../schemas/{}.schema.json\n",
        kind.schema_stem()
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeOut<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: &'a Metadata,
    spec: &'a Spec,
}

/// An encoding error (only possible for values the model never builds, such as NaN).
#[derive(Debug, thiserror::Error)]
#[error("cannot write YAML: {0}")]
pub struct EncodeError(String);

fn ser_options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        indent_step: 2,
        compact_list_indent: true,
        prefer_block_scalars: true,
        folded_wrap_chars: 1_000_000,
    }
}

/// Encode one resource file canonically, schema comment first.
pub fn encode_resource(metadata: &Metadata, spec: &Spec) -> Result<String, EncodeError> {
    let env = EnvelopeOut {
        api_version: crate::domain::model::API_VERSION,
        kind: spec.kind().name(),
        metadata,
        spec,
    };
    let body = serde_saphyr::to_string_with_options(&env, ser_options())
        .map_err(|e| EncodeError(e.to_string()))?;
    let mut out = schema_comment(spec.kind());
    out.push_str(body.trim_start_matches("---\n"));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Encode any value as canonical YAML.
pub fn encode<T: Serialize>(value: &T) -> Result<String, EncodeError> {
    serde_saphyr::to_string_with_options(value, ser_options())
        .map_err(|e| EncodeError(e.to_string()))
}

enum SpecSlot {
    Typed(Spec),
    Untyped(serde_json::Value),
}

struct Envelope {
    api_version: Option<String>,
    kind: Option<Kind>,
    metadata: Option<Metadata>,
    spec: Option<SpecSlot>,
}

struct SpecSeed(Kind);

impl<'de> DeserializeSeed<'de> for SpecSeed {
    type Value = Spec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Spec, D::Error> {
        Spec::deserialize_as(self.0, d)
    }
}

struct KindName;

impl<'de> DeserializeSeed<'de> for KindName {
    type Value = Kind;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        let s = String::deserialize(d)?;
        Kind::from_name(&s).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            de::Error::custom(format!(
                "unknown kind `{s}`, expected one of {}",
                all.join(", ")
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Envelope, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a resource: a mapping with apiVersion, kind, metadata and spec")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
                let mut env = Envelope {
                    api_version: None,
                    kind: None,
                    metadata: None,
                    spec: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "apiVersion" => env.api_version = Some(map.next_value()?),
                        "kind" => env.kind = Some(map.next_value_seed(KindName)?),
                        "metadata" => env.metadata = Some(map.next_value()?),
                        "spec" => {
                            env.spec = Some(match env.kind {
                                Some(k) => SpecSlot::Typed(map.next_value_seed(SpecSeed(k))?),
                                None => SpecSlot::Untyped(map.next_value()?),
                            })
                        }
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["apiVersion", "kind", "metadata", "spec"],
                            ))
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "apiVersion: ferry/v1\nkind: Agent\nmetadata:\n  name: a\nspec:\n  type: chat\n  model:\n    provider: openai\n    name: m\n";

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        // The bomb sits in a free-form config map, which accepts any shape:
        // only the alias budget can stop it.
        let mut bomb = AGENT.to_string();
        bomb.push_str(
            "  guardrails:\n  - name: g\n    config:\n      l0: &l0 [x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 1..9 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            bomb.push_str(&format!("      l{i}: &l{i} [{refs}]\n"));
        }
        let err = decode_resource(&bomb).unwrap_err();
        assert!(
            err.message.contains("alias") || err.message.contains("budget"),
            "{err:?}"
        );
    }

    #[test]
    fn deep_alias_expansion_hits_the_budget() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = decode::<serde_json::Value>(&doc).unwrap_err();
        assert!(
            err.message.contains("alias") || err.message.contains("budget"),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_errors_with_a_line() {
        let text = AGENT.replace("  name: a\n", "  name: a\n  name: b\n");
        let err = decode_resource(&text).unwrap_err();
        assert!(err.message.contains("duplicate"), "{err:?}");
        assert_eq!(err.line, Some(5));
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_line() {
        let err = decode_resource(&AGENT.replace("name: m\n", "name: m\n    temperature: hot\n"))
            .unwrap_err();
        assert_eq!(err.line, Some(10));
        let err =
            decode_resource(&AGENT.replace("  type: chat\n", "  type: chat\n  instructons: x\n"))
                .unwrap_err();
        assert!(
            err.message.contains("unknown field `instructons`"),
            "{err:?}"
        );
        assert_eq!(err.line, Some(7));
    }

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let doc = decode_resource(AGENT).unwrap();
        let text = encode_resource(&doc.metadata, &doc.spec).unwrap();
        assert!(text
            .starts_with("# yaml-language-server: $schema=../../../schemas/agent.schema.json\n"));
        assert_eq!(decode_resource(&text).unwrap(), doc);
        assert_eq!(encode_resource(&doc.metadata, &doc.spec).unwrap(), text);
        assert!(!text.contains('\r'));
    }
}
