//! The broker connection arguments shared by `pull`, `bridge` and `bundle
//! publish`: the URL and the mutual-TLS files, all three or none.

use std::path::PathBuf;

/// `--broker`, `--ca`, `--cert`, `--key`.
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// mqtts://host[:port] (mutual TLS) or mqtt://host[:port] (plain TCP).
    #[arg(long)]
    pub broker: String,
    /// CA certificate of the broker (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This client's certificate (PEM): the CN is its MQTT user name.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// Some but not all of the TLS files were given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("give all of --ca, --cert and --key, or none")]
pub struct PartialTls;

impl BrokerArgs {
    /// The TLS files, when all three are given; none when none is.
    pub fn tls(&self) -> Result<Option<uplink::mqtt::TlsFiles>, PartialTls> {
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(uplink::mqtt::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None, None) => Ok(None),
            _ => Err(PartialTls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_files_come_all_or_none() {
        let mut a = BrokerArgs {
            broker: "mqtts://localhost".into(),
            ca: None,
            cert: None,
            key: None,
        };
        assert_eq!(a.tls(), Ok(None));
        a.ca = Some("ca.pem".into());
        assert_eq!(a.tls(), Err(PartialTls));
        a.cert = Some("me.pem".into());
        a.key = Some("me.key".into());
        assert_eq!(a.tls().unwrap().unwrap().key, PathBuf::from("me.key"));
    }
}
