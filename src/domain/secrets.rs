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
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
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
    .any(|w| n.contains(w))
        && !n.ends_with("tokens")
        && n != "maxtokens"
}

const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "glpat-",
    "hf_",
    "pk_live_",
    "SG.",
];

/// Whether a value has the shape of a credential: a known key prefix, or a
/// long, high-entropy token with no spaces.
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() || is_encrypted(v) || v.starts_with("blake3:") || v.contains("${") {
        return false;
    }
    if v.contains(char::is_whitespace) {
        return false;
    }
    if v.len() >= 20 && KEY_PREFIXES.iter().any(|p| v.starts_with(p)) {
        return true;
    }
    if v.len() < 32 || v.contains("://") || v.contains('/') {
        return false;
    }
    let lower = v.bytes().any(|b| b.is_ascii_lowercase());
    let upper = v.bytes().any(|b| b.is_ascii_uppercase());
    let digit = v.bytes().any(|b| b.is_ascii_digit());
    if !(lower && upper && digit) {
        return false;
    }
    shannon_entropy(v) >= 4.0
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
    /// Why it was flagged.
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
            if s.is_empty() || is_encrypted(s) || is_template(s) || s == PLACEHOLDER {
                return;
            }
            if secret_ctx {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: "a credential field holds plain text",
                });
            } else if looks_like_secret(s) {
                out.push(PlainSecret {
                    field: path.to_string(),
                    reason: "the value looks like a credential",
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

/// The placeholder that stands for a scrubbed credential in exports.
pub const PLACEHOLDER: &str = "${secret:scrubbed}";

/// Replace every credential in a spec (by field name or by shape) with [`PLACEHOLDER`].
///
/// Encrypted values are scrubbed too: they can only be decrypted by the
/// source tenant, and they must never leave it. Template expressions stay.
pub fn scrub(spec: &mut serde_json::Value) -> usize {
    fn go(v: &mut serde_json::Value, path: &str, secret_ctx: bool) -> usize {
        match v {
            serde_json::Value::String(s) => {
                let plain_secret = secret_ctx && !s.is_empty() && !is_template(s);
                if plain_secret || is_encrypted(s) || looks_like_secret(s) {
                    *s = PLACEHOLDER.to_string();
                    1
                } else {
                    0
                }
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .map(|(i, x)| go(x, &format!("{path}[{i}]"), secret_ctx))
                .sum(),
            serde_json::Value::Object(map) => {
                let in_credentials = path == "spec.credentials";
                map.iter_mut()
                    .map(|(k, x)| {
                        let child = secret_ctx || in_credentials || is_secret_field(k);
                        go(x, &format!("{path}.{k}"), child)
                    })
                    .sum()
            }
            _ => 0,
        }
    }
    go(spec, "spec", false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
