//! The `ferry` binary: parse, run, map the outcome to an exit code. Nothing else.

fn main() {
    std::process::exit(ferry::cli::main());
}
