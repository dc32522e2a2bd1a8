//! `field-tools link`, `pki`, `bridge` and `pull`, built inside `hil-tests` so its
//! system tests can run them (Cargo only hands a package's tests the paths
//! of its own binaries): the same arguments and the same code
//! (`field_tools::link`, `field_tools::pki`, `field_tools::bridge::cli`,
//! `field_tools::pull::cli`) as
//! in `field-tools`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "field-tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Talk to a running node over its Unix socket or a serial port.
    Link(field_tools::link::LinkArgs),
    /// The deployment's certificates.
    Pki(field_tools::pki::PkiArgs),
    /// The RockBLOCK callback bridge.
    Bridge(field_tools::bridge::cli::BridgeArgs),
    /// Subscribe to nodes' events and status reports (persistent session).
    Pull(field_tools::pull::cli::PullArgs),
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Link(args) => field_tools::link::run(args),
        Command::Pki(args) => field_tools::pki::run(args),
        Command::Pull(args) => match field_tools::pull::cli::run(args) {
            Ok(summary) => {
                eprintln!("{}", field_tools::pull::cli::summary_line(&summary));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("field-tools: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Bridge(args) => match field_tools::bridge::cli::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("field-tools: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
