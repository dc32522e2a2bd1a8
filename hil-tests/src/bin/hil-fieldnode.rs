//! The `fieldnode` program, built inside `hil-tests` so its system tests can
//! run it (Cargo only hands a package's tests the paths of its own binaries).

fn main() -> std::process::ExitCode {
    node::cli::main()
}
