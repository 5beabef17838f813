//! `kompoxops`: the CLI edge. Parses arguments, calls the library, renders.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
