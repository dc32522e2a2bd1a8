//! `fieldnode`: the field node daemon (see `node::cli`).

fn main() -> std::process::ExitCode {
    node::cli::main()
}
