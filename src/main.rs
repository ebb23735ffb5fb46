//! The `ferry` binary and the composition root: parse, run, map the outcome
//! to an exit code, handing the CLI the front ends it starts but may not
//! name (the HTTP server). Nothing else.

/// mimalloc rather than the system allocator: decoding, diffing and
/// serializing resources is allocation after allocation, on every core.
/// Built without transparent huge pages (`no_thp`): with them, every page
/// mimalloc takes back from the kernel is a fresh 2 MiB to zero, and a
/// whole-tenant ZIP export at 100,000 resources spent a sixth of its CPU
/// in the kernel clearing pages and peaked at 287 MB instead of 224 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let frontends = ferry::cli::Frontends {
        serve: ferry::server::serve,
    };
    std::process::exit(ferry::cli::main(&frontends));
}
