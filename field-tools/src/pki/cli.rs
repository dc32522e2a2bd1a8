//! The `field-tools pki` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Issued, PkiError, Role};

/// `field-tools pki`: the deployment's CA and certificates.
#[derive(Args, Debug)]
pub struct PkiArgs {
    /// The PKI directory (holds ca.pem, private/ca.key and one folder per role).
    #[arg(long, global = true, default_value = "pki")]
    pub dir: PathBuf,
    /// Days the certificate is valid for (default: 3650 for the CA, 825 otherwise).
    #[arg(long, global = true)]
    pub days: Option<u32>,
    #[command(subcommand)]
    pub command: PkiCommand,
}

/// What to make.
#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Make the CA: DIR/ca.pem and DIR/private/ca.key (never overwrites; keep the key offline).
    Init {
        /// The CA's common name.
        #[arg(long, default_value = "Field nodes CA")]
        name: String,
    },
    /// A node's client certificate; its CN is the node id (the broker's ACL reads it as the user name).
    IssueNode {
        /// The node id, as in the node's `node_id`.
        id: String,
    },
    /// A researcher's client certificate (reads events through the broker).
    IssueResearcher {
        /// The researcher's name (the CN, their MQTT user name).
        name: String,
    },
    /// An operator's client certificate (sends commands and updates).
    IssueOperator {
        /// The operator's name (the CN, their MQTT user name).
        name: String,
    },
    /// The broker's server certificate for its host names and addresses.
    IssueBroker {
        /// The host name clients connect to (the CN and the file name).
        host: String,
        /// More DNS names or IP addresses the broker is reached at.
        #[arg(long = "alt")]
        alt: Vec<String>,
    },
}

fn print(issued: &Issued, what: &str) {
    println!("{what}");
    println!("  certificate: {}", issued.cert.display());
    println!("  key:         {} (mode 0600)", issued.key.display());
    println!("  CA:          {}", issued.ca.display());
}

fn run_inner(args: PkiArgs) -> Result<(), PkiError> {
    let days = args.days;
    match args.command {
        PkiCommand::Init { name } => {
            let i = super::init(&args.dir, &name, days.unwrap_or(3650))?;
            println!("CA {name:?} made; keep {} offline", i.key.display());
            println!("  certificate: {}", i.cert.display());
        }
        PkiCommand::IssueNode { id } => {
            let i = super::issue(&args.dir, Role::Node, &id, &[], days.unwrap_or(825))?;
            print(&i, &format!("node {id}"));
            println!("\nIn the node's configuration:\n");
            println!("[uplink.mqtt]\nnode_id = {id:?}\n\n[uplink.mqtt.tls]");
            println!("ca = {:?}", i.ca.display().to_string());
            println!("cert = {:?}", i.cert.display().to_string());
            println!("key = {:?}", i.key.display().to_string());
        }
        PkiCommand::IssueResearcher { name } => {
            let i = super::issue(&args.dir, Role::Researcher, &name, &[], days.unwrap_or(825))?;
            print(&i, &format!("researcher {name}"));
        }
        PkiCommand::IssueOperator { name } => {
            let i = super::issue(&args.dir, Role::Operator, &name, &[], days.unwrap_or(825))?;
            print(&i, &format!("operator {name}"));
        }
        PkiCommand::IssueBroker { host, alt } => {
            let i = super::issue(&args.dir, Role::Broker, &host, &alt, days.unwrap_or(825))?;
            print(&i, &format!("broker {host}"));
        }
    }
    Ok(())
}

/// Runs a `pki` command. Exit codes: 0 done, 1 refused (a file exists, a
/// bad name, no CA), 2 an I/O or certificate error.
pub fn run(args: PkiArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("field-tools pki: {e}");
            match e {
                PkiError::Exists(_)
                | PkiError::NoCa(_)
                | PkiError::BadName { .. }
                | PkiError::BadDays(_) => ExitCode::from(1),
                PkiError::Io { .. } | PkiError::Cert(_) => ExitCode::from(2),
            }
        }
    }
}
