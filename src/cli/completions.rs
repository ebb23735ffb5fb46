//! `ferry completions SHELL` and `ferry man`: shell completions and the man
//! page, generated from the clap definitions by clap_complete and clap_mangen,
//! so they can never disagree with the commands.

use anyhow::Result;
use clap::CommandFactory;

use super::{Cli, EXIT_OK};

/// The shells completions are written for.
pub use clap_complete::Shell;

/// `ferry completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: Shell) -> Result<i32> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ferry", &mut script);
    write_stdout(&script)
}

/// `ferry man`: the man page (roff) on stdout.
pub(crate) fn man() -> Result<i32> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    write_stdout(&page)
}

/// Write to stdout; a reader that stopped early (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(EXIT_OK),
    }
}
