//! The `ferry` binary and the composition root: parse, run, map the outcome
//! to an exit code, handing the CLI the front ends it starts but may not
//! name (the HTTP server). Nothing else.

/// mimalloc rather than the system allocator: decoding, diffing and
/// serializing resources is allocation after allocation, on every core.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let frontends = ferry::cli::Frontends {
        serve: ferry::server::serve,
    };
    std::process::exit(ferry::cli::main(&frontends));
}
