//! The command line: clap definitions, output, and one function per command.
//!
//! This is the edge of the program. It reads the environment, the terminal
//! and the file system, calls the library, and prints: data to stdout (text
//! for people, `--output json` for machines), status and `hint:` lines to
//! stderr. Colour only on a terminal and never with `NO_COLOR`. Exit codes:
//! 0 success, 1 error, 2 usage error (and `plan --detailed-exitcode`: 2 when
//! something would change).

mod commands;
mod completions;
mod demo;
mod git;
mod identity;
mod output;
mod promote;
mod remote;
pub mod repo;
mod revert_guard;
mod scaffold;
mod serve;
mod store;
mod sync;
mod tenant;
mod vars;
mod zip;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::Output;

/// A plan as `ferry plan` and `ferry apply --plan` print it: text and
/// Markdown (the plan-file fuzz target renders every plan it reads).
#[doc(hidden)]
pub fn plan_renderings(plan: &crate::domain::plan::Plan) -> [String; 2] {
    [
        output::plan_text(&Output::new(Format::Text), plan),
        commands::plan_markdown(plan),
    ]
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Text,
    /// JSON for machines.
    Json,
    /// Markdown (for pull-request comments).
    Markdown,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The config repo (default: the nearest folder upwards holding ferry.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The store URL: `sqlite:PATH`, `postgres://USER@HOST:PORT/DB` or a `ferry serve` at `http(s)://HOST[:PORT]` (default: from ferry.toml, else sqlite:.ferry/store.db under the repo).
    #[arg(long, global = true, value_name = "URL", env = "FERRY_STORE")]
    pub store: Option<String>,
    /// The API token for a remote store, read from this file (default: $FERRY_TOKEN).
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Act as this user (default: $FERRY_USER, else ferry.toml's user, else git's user name).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub actor: Option<String>,
}

/// Git-backed, declarative configuration sync for AI-agent platforms.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where a plan's tree comes from.
#[derive(Debug, Clone, Args, Default)]
pub struct FromArgs {
    /// Read the tree from this folder (default: tenants/<T> in the repo).
    #[arg(long, value_name = "DIR", conflicts_with = "git_ref")]
    pub from: Option<PathBuf>,
    /// Read the tree from this git revision, without a checkout.
    #[arg(long = "ref", value_name = "REV")]
    pub git_ref: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a config repo: ferry.toml, tenants/, schemas/, .gitignore, git init.
    Init {
        /// Where (default: the current folder).
        dir: Option<PathBuf>,
    },
    /// Tenants in the store.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// A tenant's variables: the values behind `${vars.NAME}`, stored encrypted.
    #[command(subcommand)]
    Vars(vars::VarsCommand),
    /// Write a minimal valid resource file: `ferry new agent support-bot`.
    New(scaffold::NewArgs),
    /// Write a tenant's drafts from the store as a tree.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Where to write (default: tenants/<T> in the repo).
        #[arg(short = 'o', long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Commit the exported tree.
        #[arg(long)]
        commit: bool,
        /// Commit message (with --commit).
        #[arg(short = 'm', long = "message", requires = "commit")]
        message: Option<String>,
        /// Allow exporting a tenant with no resources over a folder that has some.
        #[arg(long)]
        force: bool,
    },
    /// Check a tree: schema, references, cycles, secrets; every problem at once.
    Validate {
        /// The tenant whose folder to check.
        #[arg(long, conflicts_with = "path")]
        tenant: Option<String>,
        /// A tenant folder to check.
        path: Option<PathBuf>,
    },
    /// Show what apply would do.
    Plan {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        from: FromArgs,
        /// Delete what the tree does not have.
        #[arg(long)]
        prune: bool,
        /// Exit 0 when nothing would change, 2 when something would, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan to this file, to apply later with `apply --plan`.
        #[arg(short = 'o', long, value_name = "PLANFILE")]
        out: Option<PathBuf>,
    },
    /// Push a tree into the store as the tenant's drafts, in one transaction.
    Apply {
        /// The tenant.
        #[arg(long, required_unless_present = "plan")]
        tenant: Option<String>,
        #[command(flatten)]
        from: FromArgs,
        /// Delete what the tree does not have.
        #[arg(long)]
        prune: bool,
        /// Allow a prune that deletes more than half of the tenant.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Apply a plan saved with `plan --out`.
        #[arg(long, value_name = "PLANFILE", conflicts_with_all = ["from", "git_ref", "prune"])]
        plan: Option<PathBuf>,
    },
    /// Staging against production, field by field; or two git revisions (`diff REV1 REV2`).
    Diff {
        /// The tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this agent and what it needs.
        #[arg(long)]
        agent: Option<String>,
        /// Two git revisions to compare instead of staging and production.
        #[arg(value_name = "REV", num_args = 0..=2)]
        revs: Vec<String>,
    },
    /// Make staging live: new published versions, a record, and a git tag.
    Publish {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this agent and the changed dependencies it needs.
        #[arg(long)]
        agent: Option<String>,
        /// What this publish is for.
        #[arg(short = 'm', long = "message")]
        message: String,
    },
    /// The publish history, newest first.
    Publishes {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only publishes that touched this agent.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Take one publish's changes back out of staging (field-level three-way revert).
    Revert {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The publish: its number (`3`), tag (`acme-dev/publish/3`) or change id (see `ferry publishes`).
        #[arg(value_name = "PUBLISH")]
        change_id: String,
        /// Show what staging would become; write nothing.
        #[arg(long, visible_alias = "dry-run")]
        preview: bool,
        /// Write the resulting tree into the repo (for a pull request) instead of the store.
        #[arg(long)]
        write_tree: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Allow a revert that deletes more than half of the tenant's drafts.
        #[arg(long)]
        force: bool,
    },
    /// Secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// The ordered sync steps.
    Steps,
    /// Write the JSON Schemas of the resource files.
    Schemas {
        /// The folder to write to.
        #[arg(short = 'o', long, value_name = "DIR", default_value = "schemas")]
        out: PathBuf,
    },
    /// Promote a tenant's syncable resources to another tenant.
    Promote(promote::PromoteArgs),
    /// Users of the store.
    #[command(subcommand)]
    User(promote::UserCommand),
    /// Grant a user a role on a tenant: viewer, editor, admin or owner.
    Grant {
        /// The user.
        user: String,
        /// The tenant.
        tenant: String,
        /// viewer, editor, admin or owner.
        role: String,
    },
    /// Serve the store over HTTP: tenant sync, agent sync and ZIP, staging and publishing.
    Serve(serve::ServeArgs),
    /// Sync an agent live from another ferry instance into a tenant (or list the source's agents).
    Sync(sync::SyncArgs),
    /// API tokens for `ferry serve`.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// The store itself: schema migrations and status.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// ZIP artifacts: export with preview, import with strategies, pack and unpack.
    #[command(subcommand)]
    Zip(zip::ZipCommand),
    /// Shell completions on stdout: `ferry completions bash > /etc/bash_completion.d/ferry`.
    #[command(
        after_help = "Examples:\n  ferry completions bash > ~/.local/share/bash-completion/completions/ferry\n  ferry completions zsh > \"${fpath[1]}/_ferry\"\n  ferry completions fish > ~/.config/fish/completions/ferry.fish"
    )]
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: completions::Shell,
    },
    /// The man page (roff) on stdout: `ferry man | man -l -`.
    Man,
    /// The whole story, end to end, in a temporary folder, narrated.
    Demo {
        /// Keep the demo folder and print where it is.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant with its age key pair; adopts an existing tenants/<NAME>/ folder.
    Create {
        /// The tenant's name, e.g. acme-dev.
        name: String,
        /// The environment, e.g. dev.
        #[arg(long)]
        environment: Option<String>,
        /// Replace the public key an existing tenant.toml names (another store's key).
        #[arg(long)]
        force: bool,
    },
    /// List the tenants in the store.
    List,
    /// Delete a tenant from the store (drafts, published versions, variables); the repo folder stays.
    #[command(
        after_help = "Examples:\n  ferry tenant delete acme-staging --yes\n  ferry tenant delete acme-dev --yes --force   # even though other tenants came from it"
    )]
    Delete {
        /// The tenant.
        name: String,
        /// Really delete it (required).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Delete it even though other tenants' resources name it in their syncedFrom lineage.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Read a value on stdin and print it encrypted to the tenant's key: ENC[age,...].
    Encrypt {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

/// Exit code of success.
pub const EXIT_OK: i32 = 0;
/// Exit code of an error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of a usage error, and of `plan --detailed-exitcode` with changes.
pub const EXIT_CHANGES: i32 = 2;

/// The front ends the CLI starts but may not name: handed in by the
/// composition root (`src/main.rs`), so `cli` and `server` never import each other.
#[derive(Clone, Copy)]
pub struct Frontends {
    /// The HTTP server's entry point (`ferry serve`, `ferry demo`).
    pub serve: crate::service::serving::ServeFn,
}

/// Run the command line; returns the exit code.
pub fn main(frontends: &Frontends) -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let out = Output::new(cli.global.output);
    if out.format == Format::Markdown && !cli.command.has_markdown() {
        let e = anyhow::anyhow!(
            "`--output markdown` is not available for this command\nhint: only `ferry plan` has a Markdown form; use --output text or --output json"
        );
        out.error(&e, "usage", &[]);
        return EXIT_CHANGES;
    }
    match commands::run(cli.command, &cli.global, &out, frontends) {
        Ok(code) => code,
        Err(e) => {
            out.error(&e, &error_code(&e), &hints_for(&e, &cli.global));
            EXIT_ERROR
        }
    }
}

/// A command line clap refused: its own text, or with `--output json` the
/// error answer with code `usage`; exit 2 either way (0 for `--help`, `--version`).
fn usage_error(e: clap::Error) -> i32 {
    let code = e.exit_code();
    let wants_json = {
        let args: Vec<String> = std::env::args().collect();
        args.windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json")
            || args.iter().any(|a| a == "--output=json")
    };
    if code == EXIT_OK || !wants_json {
        let _ = e.print();
        return code;
    }
    let text = e.render().to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let hint = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tip: "))
        .map(str::to_string);
    let answer = crate::domain::answer::ErrorAnswer::new("usage", message, hint);
    Output::new(Format::Json).json_value(&answer);
    code
}

impl Command {
    /// Whether the command has a Markdown form (`--output markdown`).
    fn has_markdown(&self) -> bool {
        matches!(self, Command::Plan { .. })
    }
}

/// The stable code of an error, as `--output json` answers it: the same
/// codes the server uses for the same library errors.
fn error_code(e: &anyhow::Error) -> String {
    use crate::domain::access::AccessError;
    use crate::service::staging::StagingError;
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<output::Failure>() {
            return f.answer.error.code.clone();
        }
        if let Some(s) = cause.downcast_ref::<crate::backend::store::StoreError>() {
            return s.code().to_string();
        }
        if let Some(a) = cause.downcast_ref::<AccessError>() {
            return match a {
                AccessError::NoActor | AccessError::UnknownUser { .. } => "unauthorized",
                _ => "forbidden",
            }
            .to_string();
        }
        if let Some(StagingError::Store(s)) = cause.downcast_ref::<StagingError>() {
            return s.code().to_string();
        }
        if let Some(s) = cause.downcast_ref::<StagingError>() {
            if let Ok(serde_json::Value::String(kind)) = serde_json::to_value(s.status_kind()) {
                return kind;
            }
        }
    }
    "error".to_string()
}

/// Hints for errors whose fix is a known command; a tenant the store lacks
/// gets the closest one it has first.
fn hints_for(e: &anyhow::Error, g: &Global) -> Vec<String> {
    let mut hints = Vec::new();
    for cause in e.chain() {
        if let Some(crate::backend::store::StoreError::NoTenant { tenant }) = cause.downcast_ref() {
            if let Some(h) = closest_tenant(g, tenant) {
                hints.push(h);
            }
            hints.push(format!(
                "create it with `ferry tenant create {tenant}`; `ferry tenant list` shows the tenants there are"
            ));
        }
        if let Some(crate::backend::store::StoreError::TenantExists { tenant }) =
            cause.downcast_ref()
        {
            hints.push(format!(
                "`ferry tenant list` shows it; plan against it with `ferry plan --tenant {tenant}`"
            ));
        }
    }
    hints.dedup();
    hints
}

/// `did you mean `acme-dev`?` for a tenant name the store does not have.
fn closest_tenant(g: &Global, tenant: &str) -> Option<String> {
    let (_repo, store) = commands::open(g).ok()?;
    let names: Vec<String> = store.tenants().ok()?.into_iter().map(|t| t.name).collect();
    crate::domain::suggest::did_you_mean(tenant, names.iter().map(String::as_str))
}
