//! The `ferry serve` (and `ferry sync`) configuration file: a TOML document
//! whose `[sync]` table governs which *source* instances a live sync may
//! read from. This module owns the file's shape, its defaults, loading it
//! from disk and validating it (in particular that every `allowed_sources`
//! entry is a bare origin), so that live sync, from the server or the CLI,
//! only ever sees a checked config.

use std::path::Path;

use serde::Deserialize;

/// Default cap on the size of one response body read from a source: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Default whole-request deadline for one request to a source, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// The whole server configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The `[sync]` table: rules for reading from source instances.
    #[serde(default)]
    pub sync: SyncConfig,
}

/// The `[sync]` table: which source instances a live sync may contact.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Refuse plain-`http` sources unless their origin is allow-listed.
    pub require_https: bool,
    /// Permit sources that resolve to loopback, private, link-local and
    /// other non-public addresses.
    pub allow_private_sources: bool,
    /// Origins (`scheme://host[:port]`) that are always permitted, skipping
    /// both the HTTPS rule and the address rules.
    pub allowed_sources: Vec<String>,
    /// The largest response body read from a source, in bytes.
    pub max_response_bytes: u64,
    /// Whole-request deadline for one request to a source, in seconds.
    pub timeout_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            require_https: true,
            allow_private_sources: false,
            allowed_sources: Vec::new(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }
}

/// Why a server config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read server config `{path}`: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not match the config's shape
    /// (unknown key, wrong type).
    #[error("server config `{origin}`{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Parse {
        /// Where the text came from (usually the file name).
        origin: String,
        /// The 1-based line of the problem, when toml reports a position.
        line: Option<usize>,
        /// toml's description of the problem (names the offending key).
        message: String,
    },
    /// An `allowed_sources` entry is not a bare `http(s)` origin.
    #[error("server config `{origin}`: [sync] allowed_sources[{index}] = {value:?} is not an origin like \"https://host:port\": {reason}")]
    AllowedSource {
        /// Where the text came from.
        origin: String,
        /// The 0-based index of the entry.
        index: usize,
        /// The entry as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A numeric setting is out of range.
    #[error("server config `{origin}`: [sync] {field} {reason}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Read and validate the server config at `path`.
pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

/// Parse and validate server config text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ServerConfig, ConfigError> {
    let config: ServerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        line: e.span().map(|span| line_of(text, span.start)),
        message: e.message().trim().to_string(),
    })?;
    validate(&config.sync, origin)?;
    Ok(config)
}

/// The normalised origin (`scheme://host[:port]`, default port omitted,
/// host lower-cased) of an `allowed_sources` entry, or why it is not one.
pub fn normalise_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("scheme `{other}` is not http or https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials (`user@`)".to_string());
    }
    if url.host().is_none() {
        return Err("it has no host".to_string());
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!("it has a path (`{}`)", url.path()));
    }
    if url.query().is_some() {
        return Err("it has a query".to_string());
    }
    if url.fragment().is_some() {
        return Err("it has a fragment".to_string());
    }
    Ok(url.origin().ascii_serialization())
}

fn validate(sync: &SyncConfig, origin: &str) -> Result<(), ConfigError> {
    for (index, value) in sync.allowed_sources.iter().enumerate() {
        if let Err(reason) = normalise_origin(value) {
            return Err(ConfigError::AllowedSource {
                origin: origin.to_string(),
                index,
                value: value.clone(),
                reason,
            });
        }
    }
    if sync.max_response_bytes == 0 {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            field: "max_response_bytes",
            reason: "must be greater than 0",
        });
    }
    if sync.timeout_secs == 0 {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            field: "timeout_secs",
            reason: "must be greater than 0",
        });
    }
    Ok(())
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse("", "empty.toml").unwrap();
        assert_eq!(config, ServerConfig::default());
        assert!(config.sync.require_https);
        assert!(!config.sync.allow_private_sources);
        assert!(config.sync.allowed_sources.is_empty());
        assert_eq!(config.sync.max_response_bytes, 64 * 1024 * 1024);
        assert_eq!(config.sync.timeout_secs, 30);
    }

    #[test]
    fn partial_sync_table_keeps_other_defaults() {
        let text = "[sync]\nallow_private_sources = true\nallowed_sources = [\"http://127.0.0.1:7071\", \"https://Source.Example/\"]\n";
        let config = parse(text, "c.toml").unwrap();
        assert!(config.sync.require_https);
        assert!(config.sync.allow_private_sources);
        assert_eq!(config.sync.allowed_sources.len(), 2);
        assert_eq!(config.sync.timeout_secs, 30);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[sync]\nrequire_https = true\nallow_privat_sources = true\n";
        let err = parse(text, "server.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("server.toml"), "{msg}");
        assert!(msg.contains("allow_privat_sources"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        assert!(matches!(err, ConfigError::Parse { line: Some(3), .. }));
    }

    #[test]
    fn unknown_table_is_named() {
        let err = parse("[synk]\n", "server.toml").unwrap_err();
        assert!(err.to_string().contains("synk"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let err = parse("[sync]\ntimeout_secs = \"ten\"\n", "s.toml").unwrap_err();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(2), .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_allowed_source_names_index_and_value() {
        for bad in [
            "https://host/eddi",
            "ftp://host",
            "https://host?x=1",
            "https://u:p@host",
            "host:7071",
        ] {
            let text = format!("[sync]\nallowed_sources = [\"https://ok.example\", \"{bad}\"]\n");
            let err = parse(&text, "s.toml").unwrap_err();
            match &err {
                ConfigError::AllowedSource { index, value, .. } => {
                    assert_eq!(*index, 1);
                    assert_eq!(value, bad);
                }
                other => panic!("{bad}: unexpected {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains("allowed_sources[1]"), "{msg}");
        }
    }

    #[test]
    fn zero_limits_are_refused() {
        let err = parse("[sync]\nmax_response_bytes = 0\n", "s.toml").unwrap_err();
        assert!(err.to_string().contains("max_response_bytes"), "{err}");
        let err = parse("[sync]\ntimeout_secs = 0\n", "s.toml").unwrap_err();
        assert!(err.to_string().contains("timeout_secs"), "{err}");
    }

    #[test]
    fn origins_normalise() {
        assert_eq!(
            normalise_origin("HTTPS://Source.Example:443/").unwrap(),
            "https://source.example"
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:7071").unwrap(),
            "http://127.0.0.1:7071"
        );
        assert_eq!(normalise_origin("http://[::1]:80").unwrap(), "http://[::1]");
    }

    #[test]
    fn load_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
        std::fs::write(&path, "[sync]\nrequire_https = false\n").unwrap();
        assert!(!load(&path).unwrap().sync.require_https);
    }
}
