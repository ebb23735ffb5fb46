//! The config repo: `ferry.toml`, its discovery, and where tenants live.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The name of the repo settings file.
pub const CONFIG_FILE: &str = "ferry.toml";

/// The default store URL, relative to the repo root.
pub const DEFAULT_STORE: &str = "sqlite:.ferry/store.db";

/// The promotion chain of a repo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// Tenants in promotion order, e.g. dev, staging, prod.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// `ferry.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Format version, 1.
    #[serde(default = "one")]
    pub version: u32,
    /// Store URL; default `sqlite:.ferry/store.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The user commands act as by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The promotion chain.
    #[serde(default)]
    pub promotion: Promotion,
}

fn one() -> u32 {
    1
}

/// A config repo on disk.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The folder holding `ferry.toml`.
    pub root: PathBuf,
    /// Its settings.
    pub config: RepoConfig,
}

impl Repo {
    /// Find the repo: `dir` if given, else the nearest folder upwards holding `ferry.toml`.
    pub fn discover(dir: Option<&Path>) -> Result<Repo> {
        let start = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().context("cannot read the current folder")?,
        };
        let mut cur = Some(start.as_path());
        while let Some(d) = cur {
            let f = d.join(CONFIG_FILE);
            if f.is_file() {
                return Repo::load(d);
            }
            if dir.is_some() {
                break;
            }
            cur = d.parent();
        }
        bail!(
            "no {CONFIG_FILE} found in {} or above\nhint: run `ferry init` to start a config repo, or pass --repo DIR",
            start.display()
        )
    }

    /// Load the repo at `root`.
    pub fn load(root: &Path) -> Result<Repo> {
        let f = root.join(CONFIG_FILE);
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let config: RepoConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", f.display(), e.to_string().trim()))?;
        Ok(Repo {
            root: root.to_path_buf(),
            config,
        })
    }

    /// The store URL: `--store`, else `ferry.toml`, else the default.
    pub fn store_url(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string)
            .or_else(|| self.config.store.clone())
            .unwrap_or_else(|| DEFAULT_STORE.to_string())
    }

    /// The folder of a tenant's tree.
    pub fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.root.join("tenants").join(tenant)
    }

    /// A tenant's folder relative to the repo root, with `/` separators.
    pub fn tenant_rel(&self, tenant: &str) -> String {
        format!("tenants/{tenant}")
    }
}

/// The text of a new `ferry.toml`.
pub fn new_config_text() -> String {
    "# ferry config repo\nversion = 1\n\n# store = \"sqlite:.ferry/store.db\"\n\n[promotion]\nchain = []\n".to_string()
}
