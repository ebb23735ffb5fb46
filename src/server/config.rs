//! Placeholder for the server configuration (replaced by the SSRF work).

use std::path::Path;

use serde::Deserialize;

/// The server's configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ServerConfig {
    /// Live sync settings.
    #[serde(default)]
    pub sync: SyncConfig,
}

/// The `[sync]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SyncConfig {}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Read the configuration file.
pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(e.to_string()))?;
    toml::from_str(&text).map_err(|e| ConfigError(e.to_string()))
}
