//! `kompoxops`: the CLI edge. Parses arguments, calls the library, renders.
// Diagnostics are returned by value on cold error paths (see lib.rs).
#![allow(clippy::result_large_err)]

mod cli;

fn main() {
    std::process::exit(cli::main());
}
