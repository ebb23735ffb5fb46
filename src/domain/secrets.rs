//! Secrets: per-tenant age keys, `ENC[age,…]` values, and plain-text detection.
//!
//! A credential in a tree is either a template expression
//! (`${vars.CRM_API_KEY}`, kept verbatim everywhere) or a value encrypted to
//! the tenant's age public key, written `ENC[age,<base64>]`. Anyone can
//! encrypt with the public key in `tenant.toml`; only the store holds the
//! private key. Detection finds plain-text credentials by field name and by
//! shape, and reports where they are without ever repeating the value.

use base64::Engine;
use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

/// The marker that opens an encrypted value.
pub const ENC_PREFIX: &str = "ENC[age,";

/// An error of key handling or encryption. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The public key (recipient) could not be parsed.
    #[error("`{recipient}` is not an age public key")]
    BadRecipient {
        /// The text that was given.
        recipient: String,
    },
    /// The stored private key could not be parsed.
    #[error("the stored private key of tenant `{tenant}` is not an age identity")]
    BadIdentity {
        /// The tenant whose key is broken.
        tenant: String,
    },
    /// A key pair whose public key is not its private key's own.
    #[error(
        "the public key `{recipient}` of tenant `{tenant}` does not belong to its private key"
    )]
    KeyMismatch {
        /// The tenant.
        tenant: String,
        /// The public key that was given.
        recipient: String,
    },
    /// The value is not of the form `ENC[age,<base64>]`.
    #[error("value is not of the form ENC[age,<base64>]")]
    NotEncrypted,
    /// Encryption failed.
    #[error("encryption failed: {reason}")]
    Encrypt {
        /// What the age library said.
        reason: String,
    },
    /// Decryption failed (wrong tenant key or damaged value).
    #[error("cannot decrypt the value with tenant `{tenant}`'s key: {reason}")]
    Decrypt {
        /// The tenant whose key was tried.
        tenant: String,
        /// What the age library said.
        reason: String,
    },
}

/// A tenant's key pair, as text.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key (`AGE-SECRET-KEY-1…`); lives only in the store.
    pub identity: String,
    /// The public key (`age1…`); written to `tenant.toml`.
    pub recipient: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("identity", &"<redacted>")
            .field("recipient", &self.recipient)
            .finish()
    }
}

/// Generate a fresh key pair for a tenant.
pub fn generate_keypair() -> KeyPair {
    let id = age::x25519::Identity::generate();
    KeyPair {
        identity: id.to_string().expose_secret().to_string(),
        recipient: id.to_public().to_string(),
    }
}

/// Whether `keys` is an age key pair: the identity parses, and the
/// recipient is its public key. Checked where a caller hands keys over (a
/// remote store's new tenant) rather than making them here.
pub fn check_keypair(tenant: &str, keys: &KeyPair) -> Result<(), SecretError> {
    let id =
        age::x25519::Identity::from_str(&keys.identity).map_err(|_| SecretError::BadIdentity {
            tenant: tenant.to_string(),
        })?;
    if id.to_public().to_string() != keys.recipient {
        return Err(SecretError::KeyMismatch {
            tenant: tenant.to_string(),
            recipient: keys.recipient.clone(),
        });
    }
    Ok(())
}

/// Encrypt `plaintext` to `recipient`, giving `ENC[age,<base64>]`.
pub fn encrypt(recipient: &str, plaintext: &[u8]) -> Result<String, SecretError> {
    let r = age::x25519::Recipient::from_str(recipient.trim()).map_err(|_| {
        SecretError::BadRecipient {
            recipient: recipient.to_string(),
        }
    })?;
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .map_err(|e| SecretError::Encrypt {
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    let mut w = encryptor
        .wrap_output(&mut out)
        .map_err(|e| SecretError::Encrypt {
            reason: e.to_string(),
        })?;
    w.write_all(plaintext).map_err(|e| SecretError::Encrypt {
        reason: e.to_string(),
    })?;
    w.finish().map_err(|e| SecretError::Encrypt {
        reason: e.to_string(),
    })?;
    Ok(format!(
        "{ENC_PREFIX}{}]",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// Decrypt an `ENC[age,…]` value with a tenant's private key.
pub fn decrypt(tenant: &str, identity: &str, value: &str) -> Result<Vec<u8>, SecretError> {
    let body = value
        .strip_prefix(ENC_PREFIX)
        .and_then(|v| v.strip_suffix(']'))
        .ok_or(SecretError::NotEncrypted)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| SecretError::NotEncrypted)?;
    let id = age::x25519::Identity::from_str(identity).map_err(|_| SecretError::BadIdentity {
        tenant: tenant.to_string(),
    })?;
    let decryptor = age::Decryptor::new(&bytes[..]).map_err(|e| SecretError::Decrypt {
        tenant: tenant.to_string(),
        reason: e.to_string(),
    })?;
    let mut reader = decryptor
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|e| SecretError::Decrypt {
            tenant: tenant.to_string(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| SecretError::Decrypt {
            tenant: tenant.to_string(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

/// Whether an `ENC[age,…]` value holds what it claims: base64 of an age
/// file whose header parses. It says nothing about which key can open it.
pub fn parses_as_ciphertext(value: &str) -> bool {
    let Some(body) = value
        .strip_prefix(ENC_PREFIX)
        .and_then(|v| v.strip_suffix(']'))
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .is_ok_and(|bytes| age::Decryptor::new(&bytes[..]).is_ok())
}

/// Whether a value is an encrypted value.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with(ENC_PREFIX) && value.ends_with(']')
}

/// The variable names of every `${vars.NAME}` expression in `value`.
pub fn template_vars(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find("${vars.") {
        let after = &rest[i + 7..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    out.push(name.to_string());
                }
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// Whether `value` is a template expression with only a short fixed part (`Bearer ${vars.T}`).
pub fn is_template(value: &str) -> bool {
    if template_vars(value).is_empty() {
        return false;
    }
    let mut fixed = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        fixed.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = "";
            }
        }
    }
    fixed.push_str(rest);
    fixed.trim().len() <= 16 && !looks_like_secret(fixed.trim())
}

/// Whether a field name says its value is a credential (`apiKey`, `password`, `Authorization`…).
pub fn is_secret_field(name: &str) -> bool {
    // The name's letters and digits, lower-cased, on the stack for the
    // usual short names: this runs for every key of every shown value.
    let mut short = [0u8; 64];
    let mut len = 0;
    let mut long = Vec::new();
    for b in name
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
    {
        if len < short.len() {
            short[len] = b;
            len += 1;
        } else {
            if long.is_empty() {
                long.extend_from_slice(&short);
            }
            long.push(b);
        }
    }
    let n: &[u8] = if long.is_empty() {
        &short[..len]
    } else {
        &long
    };
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "credential",
        "privatekey",
        "accesskey",
        "sessionkey",
    ]
    .iter()
    .any(|w| n.windows(w.len()).any(|x| x == w.as_bytes()))
        && !n.ends_with(b"tokens")
        && n != b"maxtokens"
}

/// Prefixes of well-known API keys; what follows must be a run of at least
/// [`MIN_KEY_BODY`] key characters holding a digit.
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "github_pat_",
    "xapp-",
    "AIza",
    "glpat-",
    "hf_",
    "pk_live_",
    "SG.",
];

/// The shortest key body after a [`KEY_PREFIXES`] prefix.
const MIN_KEY_BODY: usize = 10;

/// What kind of credential was found (for messages: never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialShape {
    /// `Bearer <token>`.
    Bearer,
    /// A well-known API key prefix (`sk-…`, `ghp_…`, `xoxb-…`, `AKIA…`).
    KeyPrefix,
    /// A JSON Web Token, `eyJ….….…`.
    Jwt,
    /// A long, high-entropy run of characters.
    HighEntropy,
}

impl CredentialShape {
    /// What the shape is, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            CredentialShape::Bearer => "the value holds a bearer token",
            CredentialShape::KeyPrefix => "the value holds an API key of a well-known shape",
            CredentialShape::Jwt => "the value holds a JSON Web Token",
            CredentialShape::HighEntropy => {
                "the value holds a long high-entropy string, like a credential"
            }
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `word` is a key with a well-known prefix.
fn is_prefixed_key(word: &str) -> bool {
    let keyish = |body: &str, min: usize| {
        body.chars().count() >= min
            && body.chars().all(is_key_char)
            && body.chars().any(|c| c.is_ascii_digit())
    };
    if let Some(body) = word
        .strip_prefix("AKIA")
        .or_else(|| word.strip_prefix("ASIA"))
    {
        return body.len() == 16
            && body
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    }
    // Slack: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-…
    if let Some(rest) = word.strip_prefix("xox") {
        let mut chars = rest.chars();
        if chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.next() == Some('-') {
            return keyish(&rest[2..], MIN_KEY_BODY);
        }
    }
    KEY_PREFIXES.iter().any(|p| {
        word.strip_prefix(p)
            .is_some_and(|b| keyish(b, MIN_KEY_BODY))
    })
}

/// Whether `word` is a JSON Web Token: `eyJ` header, three base64url parts.
fn is_jwt(word: &str) -> bool {
    if !word.starts_with("eyJ") {
        return false;
    }
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            p.len() >= 4
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Whether `word` is a long, high-entropy run: 32 characters or more, lower
/// and upper case and digits, no path, entropy of at least 4 bits a character.
fn is_high_entropy(word: &str) -> bool {
    if word.len() < 32 || word.contains('/') || word.starts_with("blake3") {
        return false;
    }
    let lower = word.bytes().any(|b| b.is_ascii_lowercase());
    let upper = word.bytes().any(|b| b.is_ascii_uppercase());
    let digit = word.bytes().any(|b| b.is_ascii_digit());
    lower && upper && digit && shannon_entropy(word) >= 4.0
}

/// `value` with what may stand beside a credential without being one blanked
/// out: `ENC[age,…]` values, `${vars.NAME}` expressions and the scrub placeholder.
fn without_safe_spans(value: &str) -> std::borrow::Cow<'_, str> {
    let markers = [ENC_PREFIX, "${vars.", PLACEHOLDER];
    // Every marker holds a `$` or a `[`: most values have neither.
    let marked = value.bytes().any(|b| b == b'$' || b == b'[');
    if !marked || !markers.iter().any(|m| value.contains(m)) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    loop {
        let next = markers
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min();
        let Some((i, marker)) = next else {
            out.push_str(rest);
            return std::borrow::Cow::Owned(out);
        };
        out.push_str(&rest[..i]);
        out.push(' ');
        let after = &rest[i..];
        let end = if marker == PLACEHOLDER {
            Some(PLACEHOLDER.len())
        } else {
            let close = if marker == ENC_PREFIX { ']' } else { '}' };
            after.find(close).map(|j| j + 1)
        };
        match end {
            Some(e) => rest = &after[e..],
            None => {
                out.push_str(after);
                return std::borrow::Cow::Owned(out);
            }
        }
    }
}

/// What separates the words [`credential_in`] looks at.
fn is_word_break(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '`'
            | '('
            | ')'
            | '<'
            | '>'
            | '{'
            | '}'
            | '['
            | ']'
            | ','
            | ';'
            | '='
            | '|'
            | '$'
            | ':'
            | '\\'
    ) || c.is_whitespace()
}

/// The shortest word that can be a credential: a bearer token's 12
/// characters (every key shape and a JWT are longer still).
const MIN_CREDENTIAL_WORD: usize = 12;

/// Whether `value` has a run of [`MIN_CREDENTIAL_WORD`] characters without a
/// word break: without one it holds no credential, and is passed over
/// without splitting it.
fn has_long_word(value: &str) -> bool {
    let mut run = 0;
    for c in value.chars() {
        if is_word_break(c) {
            run = 0;
        } else {
            run += 1;
            if run >= MIN_CREDENTIAL_WORD {
                return true;
            }
        }
    }
    false
}

/// The shape of the first credential inside `value`, anywhere in it: a
/// `Bearer …` token, a well-known key (`sk-…`, `sk_live_…`, `ghp_…`,
/// `xox?-…`, `AKIA…`), a JWT (`eyJ….….…`) or a long high-entropy run, also
/// amid prose, quotes, `key=value` pairs or `${…}`. Encrypted values and
/// `${vars.NAME}` expressions are not credentials.
pub fn credential_in(value: &str) -> Option<CredentialShape> {
    if !has_long_word(value) {
        return None;
    }
    let text = without_safe_spans(value);
    let mut words = text
        .split(is_word_break)
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '!' || c == '?' || c == '*'))
        .filter(|w| !w.is_empty())
        .peekable();
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("bearer") {
            if let Some(next) = words.peek() {
                let has_digit = next.chars().any(|c| c.is_ascii_digit());
                let has_alpha = next.chars().any(|c| c.is_ascii_alphabetic());
                if next.len() >= MIN_CREDENTIAL_WORD && has_digit && has_alpha {
                    return Some(CredentialShape::Bearer);
                }
            }
        }
        if word.len() < MIN_CREDENTIAL_WORD {
            continue;
        }
        if is_prefixed_key(word) {
            return Some(CredentialShape::KeyPrefix);
        }
        if is_jwt(word) {
            return Some(CredentialShape::Jwt);
        }
        if is_high_entropy(word) {
            return Some(CredentialShape::HighEntropy);
        }
    }
    None
}

/// Whether a value holds something shaped like a credential anywhere in it
/// ([`credential_in`]).
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && !is_encrypted(v) && credential_in(v).is_some()
}

fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Where a plain-text credential sits, and why it was flagged. Holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainSecret {
    /// Dotted path, e.g. `spec.credentials.apiKey`.
    pub field: String,
    /// Why it was flagged: what the value holds or that the field is a
    /// credential field (`a bearer token`, `a credential field holds plain text`).
    pub reason: &'static str,
}

/// Find plain-text credentials in a spec (as JSON), by field name and by shape.
///
/// `credential_fields` names map fields whose every value is a credential
/// (a connection's `credentials`).
pub fn find_plain_secrets(spec: &serde_json::Value) -> Vec<PlainSecret> {
    let mut out = Vec::new();
    walk(spec, "spec", false, &mut out);
    out
}

fn walk(v: &serde_json::Value, path: &str, secret_ctx: bool, out: &mut Vec<PlainSecret>) {
    match v {
        serde_json::Value::String(s) => {
            if s.starts_with("ENC[") && !parses_as_ciphertext(s) {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: "the value is marked `ENC[age,…]` but is not an age ciphertext",
                });
                return;
            }
            if s.is_empty() || is_encrypted(s) || s == PLACEHOLDER {
                return;
            }
            if secret_ctx && !is_template(s) {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: "a credential field holds plain text",
                });
            } else if let Some(shape) = credential_in(s) {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: shape.describe(),
                });
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), secret_ctx, out);
            }
        }
        serde_json::Value::Object(map) => {
            let in_credentials = path == "spec.credentials";
            for (k, item) in map {
                let child_secret = secret_ctx || in_credentials || is_secret_field(k);
                walk(item, &format!("{path}.{k}"), child_secret, out);
            }
        }
        _ => {}
    }
}

/// What a shown change prints in place of a plain-text credential.
pub const HIDDEN: &str = "(credential hidden)";

/// `value` of the field at dotted `path` as it may be shown (a plan, a diff,
/// a revert preview, an HTTP body): plain-text credentials (in a credential
/// field, or credential-shaped anywhere) become [`HIDDEN`]; `ENC[age,…]`
/// ciphertexts, templates and everything else stay.
pub fn shown(path: &str, value: &serde_json::Value) -> serde_json::Value {
    // A JSON value always serializes to a JSON value.
    serde_json::to_value(Shown::at(path, value)).unwrap_or(serde_json::Value::Null)
}

/// Whether a dotted path names a credential field anywhere along it.
fn in_secret_field(path: &str) -> bool {
    path.split(['.', '['])
        .any(|seg| !seg.is_empty() && is_secret_field(seg))
}

/// Whether [`shown`] hides the string `s`, inside a credential field or not.
fn hides(s: &str, secret_ctx: bool) -> bool {
    if is_encrypted(s) {
        !parses_as_ciphertext(s) && !is_abbreviated(s)
    } else {
        (secret_ctx && !s.is_empty() && s != PLACEHOLDER && !is_template(s)) || looks_like_secret(s)
    }
}

/// A value as it may be shown, serialized straight from the original
/// without copying it first (an HTTP body of a large diff); [`shown`] is
/// this collected into a value.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    value: &'a serde_json::Value,
    secret_ctx: bool,
}

impl<'a> Shown<'a> {
    /// The value of the field at dotted `path`, as it may be shown.
    pub fn at(path: &str, value: &'a serde_json::Value) -> Self {
        Shown {
            value,
            secret_ctx: in_secret_field(path),
        }
    }

    /// Another value of the same field (the other side of a change).
    pub fn beside(&self, value: &'a serde_json::Value) -> Self {
        Shown { value, ..*self }
    }
}

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let secret_ctx = self.secret_ctx;
        match self.value {
            serde_json::Value::String(v) if hides(v, secret_ctx) => s.serialize_str(HIDDEN),
            serde_json::Value::Array(items) => {
                s.collect_seq(items.iter().map(|value| Shown { value, secret_ctx }))
            }
            serde_json::Value::Object(map) => s.collect_map(map.iter().map(|(k, value)| {
                let secret_ctx = secret_ctx || is_secret_field(k);
                (k, Shown { value, secret_ctx })
            })),
            other => other.serialize(s),
        }
    }
}

/// The `ENC[age,…]` values of a spec (as JSON) that are age ciphertexts but
/// do not decrypt with the tenant's private key `identity`: encrypted to
/// another tenant's key (another store's `tenant.toml`), or damaged. Values
/// that are not ciphertexts at all are [`find_plain_secrets`]' business.
/// Holds fields only; what a value decrypts to is dropped at once.
pub fn undecryptable(spec: &serde_json::Value, tenant: &str, identity: &str) -> Vec<PlainSecret> {
    fn go(
        v: &serde_json::Value,
        path: &str,
        opens: &dyn Fn(&str) -> bool,
        out: &mut Vec<PlainSecret>,
    ) {
        match v {
            serde_json::Value::String(s) if parses_as_ciphertext(s) && !opens(s) => {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: "the `ENC[age,…]` value does not decrypt with this tenant's key (it was encrypted to another key)",
                });
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    go(item, &format!("{path}[{i}]"), opens, out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    go(item, &format!("{path}.{k}"), opens, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    go(
        spec,
        "spec",
        &|s| decrypt(tenant, identity, s).is_ok(),
        &mut out,
    );
    out
}

/// An `ENC[age,…]` value shortened for people: `ENC[age,…3f9a]`, the last
/// four characters of the ciphertext. Anything else is returned as it is.
pub fn abbreviate(value: &str) -> std::borrow::Cow<'_, str> {
    let Some(body) = value
        .strip_prefix(ENC_PREFIX)
        .and_then(|v| v.strip_suffix(']'))
    else {
        return std::borrow::Cow::Borrowed(value);
    };
    let tail: String = {
        let chars: Vec<char> = body.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    std::borrow::Cow::Owned(format!("{ENC_PREFIX}…{tail}]"))
}

/// Whether `value` is an [`abbreviate`]d ciphertext, `ENC[age,…3f9a]`.
pub fn is_abbreviated(value: &str) -> bool {
    value
        .strip_prefix(ENC_PREFIX)
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.strip_prefix('…'))
        .is_some_and(|tail| tail.chars().count() <= 4)
}

/// A JSON value with every `ENC[age,…]` string in it [`abbreviate`]d.
pub fn abbreviate_value(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) if is_encrypted(s) => {
            serde_json::Value::String(abbreviate(s).into_owned())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(abbreviate_value).collect())
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, x)| (k.clone(), abbreviate_value(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// [`abbreviate_value`] on a value of one's own: every `ENC[age,…]` string
/// in it abbreviated where it stands, nothing else touched or copied.
pub fn abbreviate_in_place(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if is_encrypted(s) => *s = abbreviate(s).into_owned(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(abbreviate_in_place),
        serde_json::Value::Object(map) => map.values_mut().for_each(abbreviate_in_place),
        _ => {}
    }
}

/// The placeholder that stands for a scrubbed credential in exports.
pub const PLACEHOLDER: &str = "${secret:scrubbed}";

/// Replace every credential in a spec (by field name or by shape) with [`PLACEHOLDER`].
///
/// Encrypted values are scrubbed too: they can only be decrypted by the
/// source tenant, and they must never leave it. Template expressions stay.
/// Returns how many values were replaced.
pub fn scrub(spec: &mut serde_json::Value) -> usize {
    scrub_values(spec, true)
}

/// Replace every plain-text credential in a spec (credential-field values
/// and credential-shaped values anywhere) with [`PLACEHOLDER`], keeping
/// `ENC[age,…]` values and template expressions: what a tree written to a
/// folder or to git may hold. Returns how many values were replaced.
pub fn scrub_plain(spec: &mut serde_json::Value) -> usize {
    scrub_values(spec, false)
}

fn scrub_values(spec: &mut serde_json::Value, encrypted_too: bool) -> usize {
    /// Where a value sits, as far as scrubbing cares: no path is built,
    /// since this runs for every value of every exported spec.
    #[derive(Clone, Copy, PartialEq)]
    enum Place {
        /// The spec itself.
        Top,
        /// `spec.credentials`, whose every field is a credential.
        Credentials,
        /// Anywhere else.
        Inside,
    }
    fn go(v: &mut serde_json::Value, place: Place, secret_ctx: bool, enc: bool) -> usize {
        match v {
            serde_json::Value::String(s) => {
                if s == PLACEHOLDER || s.is_empty() {
                    return 0;
                }
                let scrubbed = if is_encrypted(s) {
                    // A real ciphertext leaves only with `enc`; a fake one never.
                    enc || !parses_as_ciphertext(s)
                } else {
                    (secret_ctx && !is_template(s)) || looks_like_secret(s)
                };
                if scrubbed {
                    *s = PLACEHOLDER.to_string();
                    1
                } else {
                    0
                }
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .map(|x| go(x, Place::Inside, secret_ctx, enc))
                .sum(),
            serde_json::Value::Object(map) => map
                .iter_mut()
                .map(|(k, x)| {
                    let child = secret_ctx || place == Place::Credentials || is_secret_field(k);
                    let at = if place == Place::Top && k == "credentials" {
                        Place::Credentials
                    } else {
                        Place::Inside
                    };
                    go(x, at, child, enc)
                })
                .sum(),
            _ => 0,
        }
    }
    go(spec, Place::Top, false, encrypted_too)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pair_is_a_private_key_and_its_own_public_key() {
        let keys = generate_keypair();
        assert!(check_keypair("t", &keys).is_ok());
        let other = generate_keypair();
        let crossed = KeyPair {
            identity: keys.identity.clone(),
            recipient: other.recipient,
        };
        assert!(matches!(
            check_keypair("t", &crossed),
            Err(SecretError::KeyMismatch { .. })
        ));
        let broken = KeyPair {
            identity: "AGE-SECRET-KEY-1NOPE".into(),
            recipient: keys.recipient,
        };
        let err = check_keypair("t", &broken).unwrap_err();
        assert!(matches!(err, SecretError::BadIdentity { .. }));
        assert!(!err.to_string().contains("NOPE"));
    }

    #[test]
    fn encrypt_then_decrypt() {
        let k = generate_keypair();
        let enc = encrypt(&k.recipient, b"s3cret-value").unwrap();
        assert!(is_encrypted(&enc));
        assert!(!enc.contains("s3cret"));
        assert_eq!(decrypt("t", &k.identity, &enc).unwrap(), b"s3cret-value");
        let other = generate_keypair();
        assert!(decrypt("t", &other.identity, &enc).is_err());
    }

    #[test]
    fn only_real_ciphertexts_pass_as_encrypted() {
        let k = generate_keypair();
        let real = encrypt(&k.recipient, b"v").unwrap();
        assert!(parses_as_ciphertext(&real));
        for fake in [
            "ENC[age,sk-live-PLAINTEXT999]",
            "ENC[age,!!!garbage###]",
            "ENC[age,]",
        ] {
            assert!(!parses_as_ciphertext(fake), "{fake}");
            let found = find_plain_secrets(&serde_json::json!({"headers": {"X-Key": fake}}));
            assert_eq!(found.len(), 1, "{fake}");
            assert_eq!(found[0].field, "spec.headers.X-Key");
        }
        assert!(find_plain_secrets(&serde_json::json!({"apiKey": real})).is_empty());
    }

    #[test]
    fn values_encrypted_to_another_key_are_found_by_field() {
        let mine = generate_keypair();
        let theirs = generate_keypair();
        let ok = encrypt(&mine.recipient, b"sk-live-MINE").unwrap();
        let foreign = encrypt(&theirs.recipient, b"sk-live-THEIRS").unwrap();
        let spec = serde_json::json!({"credentials": {"apiKey": ok, "token": foreign},
            "headers": [{"X": "plain"}]});
        let found = undecryptable(&spec, "t", &mine.identity);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "spec.credentials.token");
        assert!(!found[0].reason.contains("THEIRS"));
        assert!(undecryptable(&spec, "t", &theirs.identity)[0].field == "spec.credentials.apiKey");
    }

    #[test]
    fn ciphertext_is_abbreviated_to_its_last_four_characters() {
        let k = generate_keypair();
        let enc = encrypt(&k.recipient, b"v").unwrap();
        let short = abbreviate(&enc);
        let body = &enc[ENC_PREFIX.len()..enc.len() - 1];
        assert_eq!(short, format!("ENC[age,…{}]", &body[body.len() - 4..]));
        assert_eq!(abbreviate("ENC[age,ab]"), "ENC[age,…ab]");
        assert_eq!(abbreviate("plain"), "plain");
        assert!(is_abbreviated(&short));
        assert!(!is_abbreviated(&enc));
        assert_eq!(
            shown("spec.credentials.apiKey", &serde_json::json!(short)),
            serde_json::json!(short)
        );
    }

    #[test]
    fn detection() {
        assert!(is_template("${vars.CRM_API_KEY}"));
        assert!(is_template("Bearer ${vars.TOKEN}"));
        assert!(!is_template("plain"));
        assert!(looks_like_secret("sk-live-51HxQabcdefghijklmnop"));
        assert!(looks_like_secret("Zx9Qw7Er5Ty3Ui1Op0As8Df6Gh4Jk2LmN"));
        assert!(!looks_like_secret(
            "blake3:0123456789abcdef0123456789abcdef"
        ));
        assert!(!looks_like_secret("https://api.example.com/v1/customers"));
        assert!(is_secret_field("apiKey"));
        assert!(is_secret_field("Authorization"));
        assert!(!is_secret_field("maxTokens"));
        let spec =
            serde_json::json!({"credentials": {"apiKey": "hunter2"}, "headers": {"X-Team": "ops"}});
        let found = find_plain_secrets(&spec);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].field, "spec.credentials.apiKey");
    }

    const SHAPED: &[(&str, CredentialShape)] = &[
        ("Bearer sk-live-HDRSECRET456", CredentialShape::Bearer),
        ("bearer  abcdef0123456789xyz", CredentialShape::Bearer),
        ("use sk-live-HDRSECRET456 for the demo", CredentialShape::KeyPrefix),
        ("key=sk_live_51HxQabcdefgh12", CredentialShape::KeyPrefix),
        ("${sk-proj-AbCdEf0123456789}", CredentialShape::KeyPrefix),
        ("token: ghp_16C7e42F292c6912E7710c838347Ae178B4a", CredentialShape::KeyPrefix),
        ("xoxb-123456789012-abcdefABCDEF", CredentialShape::KeyPrefix),
        ("xoxp-9876543210-secretvalue", CredentialShape::KeyPrefix),
        ("aws AKIAIOSFODNN7EXAMPLE here", CredentialShape::KeyPrefix),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            CredentialShape::Jwt,
        ),
        ("\"Zx9Qw7Er5Ty3Ui1Op0As8Df6Gh4Jk2LmN\"", CredentialShape::HighEntropy),
        ("${vars.A} sk-live-HDRSECRET456", CredentialShape::KeyPrefix),
    ];

    #[test]
    fn credential_shapes_are_found_anywhere_in_a_string() {
        for (value, shape) in SHAPED {
            assert_eq!(credential_in(value), Some(*shape), "{value}");
            let found = find_plain_secrets(&serde_json::json!({"headers": {"X-Debug": value}}));
            assert_eq!(found.len(), 1, "{value}");
            assert_eq!(found[0].field, "spec.headers.X-Debug");
            assert!(!found[0].reason.contains(value.trim()), "{value}");
        }
    }

    #[test]
    fn prose_ids_hashes_and_templates_are_not_credentials() {
        let k = generate_keypair();
        let real = encrypt(&k.recipient, b"sk-live-HDRSECRET456").unwrap();
        for value in [
            "Bearer ${vars.CRM_TOKEN}",
            "Bearer tokens are sent in the Authorization header.",
            "You are a helpful billing assistant. Be concise; cite the FAQ.",
            "agt_0123456789abcdef0123456789abcdef",
            "blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "https://api.example.com/v1/customers/{customerId}?expand=Invoices2024",
            "550e8400-e29b-41d4-a716-446655440000",
            "the sk-learn library and task-runner-2",
            "gpt-4o-mini",
            "${secret:scrubbed}",
            "ENC[age,YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSB4eXo=]",
            real.as_str(),
        ] {
            assert_eq!(credential_in(value), None, "{value}");
        }
        assert!(find_plain_secrets(&serde_json::json!({"headers": {"X-Key": real}})).is_empty());
    }

    #[test]
    fn scrubbing_counts_what_it_replaces() {
        let k = generate_keypair();
        let real = encrypt(&k.recipient, b"v").unwrap();
        let spec = serde_json::json!({
            "credentials": {"apiKey": real, "other": "${vars.X}"},
            "headers": {"X-Debug": "Bearer sk-live-HDRSECRET456", "X-Team": "ops"},
            "description": "call with key=ghp_16C7e42F292c6912E7710c838347Ae178B4a please",
        });
        let mut zip = spec.clone();
        assert_eq!(scrub(&mut zip), 3);
        assert_eq!(zip["credentials"]["apiKey"], PLACEHOLDER);
        assert_eq!(zip["credentials"]["other"], "${vars.X}");
        assert_eq!(zip["headers"]["X-Team"], "ops");
        assert!(!zip.to_string().contains("HDRSECRET") && !zip.to_string().contains("ghp_"));
        let mut git = spec.clone();
        assert_eq!(scrub_plain(&mut git), 2);
        assert_eq!(git["credentials"]["apiKey"], real);
        assert_eq!(git["headers"]["X-Debug"], PLACEHOLDER);
        assert_eq!(
            scrub_plain(&mut git),
            0,
            "scrubbing twice replaces nothing more"
        );
    }

    #[test]
    fn word_breaks_are_the_documented_ones() {
        for c in "\"'`()<>{}[],;=|$:\\ \t\n".chars() {
            assert!(is_word_break(c), "{c:?}");
        }
        for c in "aZ09-_./!?*+@#%&~^é".chars() {
            assert!(!is_word_break(c), "{c:?}");
        }
        assert!(!has_long_word("short words only, all of them"));
        assert!(has_long_word("one ABCDEFGHIJKL"));
    }

    #[test]
    fn shown_hides_credentials_at_every_depth_and_keeps_the_rest() {
        let k = generate_keypair();
        let real = encrypt(&k.recipient, b"v").unwrap();
        let spec = serde_json::json!({
            "instructions": "Be kind. Bearer sk-live-HDRSECRET456 here",
            "credentials": {"apiKey": "hunter2", "other": "${vars.K}", "enc": real},
            "headers": {"Authorization": "x1", "Accept": "json", "list": ["a", 1, null]},
            "maxTokens": 512,
            "nested": [{"password": ["p1", {"deep": "p2"}]}, "ENC[age,broken]"],
            "notes": "eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl",
        });
        assert_eq!(
            shown("spec", &spec),
            serde_json::json!({
                "instructions": HIDDEN,
                "credentials": {"apiKey": HIDDEN, "other": "${vars.K}", "enc": real},
                "headers": {"Authorization": HIDDEN, "Accept": "json", "list": ["a", 1, null]},
                "maxTokens": 512,
                "nested": [{"password": [HIDDEN, {"deep": HIDDEN}]}, HIDDEN],
                "notes": HIDDEN,
            })
        );
        // Written straight to bytes, the same as the value.
        let bytes = serde_json::to_vec(&Shown::at("spec", &spec)).unwrap();
        let read: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, shown("spec", &spec));
        // A field name past the 64 bytes kept on the stack is still read whole.
        let long = "spec.longKeyNameOfMoreThanSixtyFourCharactersSoItSpillsPastTheStackBufferToken";
        assert_eq!(
            shown(long, &serde_json::json!("v")),
            serde_json::json!(HIDDEN)
        );
        assert!(is_secret_field(
            "aLongFieldNameOfMoreThanSixtyFourCharactersThatEndsInTheWordPassword"
        ));
        assert!(!is_secret_field("maxTokens"));
        assert!(!is_secret_field("instructions"));
    }

    #[test]
    fn shown_values_hide_plain_credentials_only() {
        let k = generate_keypair();
        let real = encrypt(&k.recipient, b"v").unwrap();
        assert_eq!(
            shown(
                "spec.headers.X-Debug",
                &serde_json::json!("Bearer sk-live-HDRSECRET456")
            ),
            serde_json::json!(HIDDEN)
        );
        assert_eq!(
            shown("spec.credentials.apiKey", &serde_json::json!("hunter2")),
            serde_json::json!(HIDDEN)
        );
        assert_eq!(
            shown("spec.credentials.apiKey", &serde_json::json!(real)),
            serde_json::json!(real)
        );
        assert_eq!(
            shown(
                "spec.credentials",
                &serde_json::json!({"apiKey": "${vars.K}"})
            ),
            serde_json::json!({"apiKey": "${vars.K}"})
        );
        assert_eq!(
            shown(
                "spec.headers",
                &serde_json::json!({"Authorization": "x1", "Accept": "json"})
            ),
            serde_json::json!({"Authorization": HIDDEN, "Accept": "json"})
        );
        assert_eq!(
            shown("spec.maxTokens", &serde_json::json!(512)),
            serde_json::json!(512)
        );
        assert_eq!(
            shown("spec.instructions", &serde_json::json!("Be kind.")),
            serde_json::json!("Be kind.")
        );
    }
}
