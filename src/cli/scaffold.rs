//! `ferry new KIND NAME`: write a minimal valid resource file, with the
//! schema comment, so a new resource starts from something that validates
//! instead of a list of missing fields.
//!
//! The file is the canonical encoding of a small model value, so an export
//! after an apply gives the same bytes back (plus the stored ID).

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::Output;
use super::repo::Repo;
use super::{Global, EXIT_OK};
use crate::domain::model::{self, Kind, Metadata, Resource, Spec};

/// A resource kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum KindArg {
    /// An agent.
    Agent,
    /// A callable tool.
    Tool,
    /// API credentials and a service endpoint.
    Connection,
    /// A collection of documents.
    KnowledgeBase,
    /// A document reference.
    Document,
    /// An ordered multi-step process.
    Workflow,
    /// A test suite for an agent.
    Evaluation,
}

impl KindArg {
    fn kind(self) -> Kind {
        match self {
            KindArg::Agent => Kind::Agent,
            KindArg::Tool => Kind::Tool,
            KindArg::Connection => Kind::Connection,
            KindArg::KnowledgeBase => Kind::KnowledgeBase,
            KindArg::Document => Kind::Document,
            KindArg::Workflow => Kind::Workflow,
            KindArg::Evaluation => Kind::Evaluation,
        }
    }
}

/// The options of `ferry new`.
#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    /// The kind: agent, tool, connection, knowledgeBase, document, workflow or evaluation.
    #[arg(value_enum)]
    pub kind: KindArg,
    /// The resource's name (also its file name).
    pub name: String,
    /// The tenant (default: the only folder under tenants/).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Mark the resource `syncable: true` (promotion selects it).
    #[arg(long)]
    pub syncable: bool,
    /// For a tool: the connection it calls.
    #[arg(long, value_name = "CONNECTION")]
    pub connection: Option<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// The name of the variable a new connection's credential refers to, e.g. `CRM_API_KEY`.
fn variable_for(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}_API_KEY")
}

/// The smallest valid spec of `kind`, as JSON.
fn minimal_spec(kind: Kind, name: &str) -> serde_json::Value {
    match kind {
        Kind::Agent => json!({
            "type": "chat",
            "model": {"provider": "openai", "name": "gpt-4o-mini"},
            "instructions": format!("You are {name}.\n"),
        }),
        Kind::Tool => json!({
            "type": "http",
            "request": {"method": "GET", "path": "/"},
        }),
        Kind::Connection => json!({
            "type": "http",
            "baseUrl": "https://api.example.com",
            "credentials": {"apiKey": format!("${{vars.{}}}", variable_for(name))},
        }),
        Kind::KnowledgeBase => json!({"description": format!("The {name} knowledge base.")}),
        Kind::Document => json!({"title": name, "mediaType": "text/markdown"}),
        Kind::Workflow => json!({"steps": [{"type": "llm", "name": "answer"}]}),
        Kind::Evaluation => json!({
            "target": {},
            "cases": [{"name": "smoke", "input": "Hello"}],
        }),
    }
}

/// A minimal valid resource of `kind` named `name`, in tree form.
pub fn minimal_resource(kind: Kind, name: &str, syncable: bool) -> Result<Resource> {
    let spec = Spec::from_json(kind, minimal_spec(kind, name))
        .map_err(|e| anyhow!("cannot build a {kind}: {e}"))?;
    Ok(Resource {
        metadata: Metadata {
            id: None,
            name: name.to_string(),
            syncable,
            synced_from: None,
            origin_id: None,
            created_by: None,
        },
        spec,
        content: None,
    })
}

/// The tenant a command means: the flag, else the only tenant folder of the repo.
pub(crate) fn tenant_or_only(repo: &Repo, tenant: Option<String>) -> Result<String> {
    if let Some(t) = tenant {
        return Ok(t);
    }
    let mut dirs: Vec<String> = std::fs::read_dir(repo.root.join("tenants"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("there is no tenant folder yet\nhint: `ferry tenant create NAME` makes one"),
        many => bail!(
            "say which tenant: --tenant {}\nhint: the repo has {} tenant folders",
            many.join("|"),
            many.len()
        ),
    }
}

/// `ferry new KIND NAME`.
pub fn new_resource(g: &Global, out: &Output, args: &NewArgs) -> Result<i32> {
    if !model::is_valid_name(&args.name) {
        bail!(
            "name `{}` must be lower-case letters, digits, `-`, `_` or `.`",
            args.name
        );
    }
    let repo = Repo::discover(g.repo.as_deref())?;
    let tenant = tenant_or_only(&repo, args.tenant.clone())?;
    let kind = args.kind.kind();
    let mut resource = minimal_resource(kind, &args.name, args.syncable)?;
    match (&mut resource.spec, &args.connection) {
        (Spec::Tool(t), Some(c)) => t.connection = Some(c.clone()),
        (_, Some(_)) => bail!("--connection is for tools only"),
        _ => {}
    }
    let files = crate::domain::tree::encode_resource(&resource)?;
    let dir = repo.tenant_dir(&tenant);
    let rel = model::resource_path(kind, &args.name);
    let path = dir.join(&rel);
    if path.exists() && !args.force {
        bail!(
            "{} exists already\nhint: pass --force to overwrite it",
            path.display()
        );
    }
    for (p, bytes) in &files {
        let dest = dir.join(p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&dest, bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    let shown = format!("{}/{rel}", repo.tenant_rel(&tenant));
    if out.json() {
        out.json_value(&json!({"tenant": tenant, "kind": kind, "name": args.name, "file": shown}));
    } else {
        out.data(&format!("Wrote {kind} {} to {shown}", args.name));
        out.hint(&format!("edit it, then `ferry validate --tenant {tenant}`"));
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_minimal_resource_that_decodes() {
        for kind in Kind::ALL {
            let r = minimal_resource(kind, "sample", false).unwrap();
            let files = crate::domain::tree::encode_resource(&r).unwrap();
            let (path, bytes) = &files[0];
            let back = crate::domain::tree::decode_file(path, bytes).unwrap();
            assert_eq!(back, r, "{kind}");
        }
    }
}
