//! `field-tools pki`: a small certificate authority for one deployment.
//!
//! It makes the CA, and X.509 v3 certificates for the nodes (CN = the node
//! id, which the broker's ACL reads as the MQTT user name), the researchers
//! and operators (client certificates), and the broker (a server
//! certificate with its host names). Keys are ECDSA P-256 (`rcgen` on
//! `ring`), written with mode 0600 into a directory only their owner may
//! enter, and never overwritten.
//!
//! Layout of a PKI directory:
//!
//! ```text
//! DIR/ca.pem                      the CA certificate (give it to every party)
//! DIR/private/ca.key              the CA key (keep it offline)
//! DIR/nodes/ID.pem, ID.key        a node's identity
//! DIR/researchers/NAME.pem, .key  a researcher's identity
//! DIR/operators/NAME.pem, .key    an operator's identity
//! DIR/brokers/HOST.pem, .key      the broker's server certificate
//! ```

mod cli;
mod files;

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

pub use cli::{PkiArgs, PkiCommand, run};
use files::{create_private_dir, read, write_new};

/// Why a PKI step failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file that must not be replaced exists.
    #[error("{}: already exists; refusing to overwrite it (remove it first if you mean to replace it)", .0.display())]
    Exists(PathBuf),
    /// `init` has not been run in this directory.
    #[error("{}: no CA here; run `field-tools pki init --dir {}` first", .0.display(), .0.parent().unwrap_or(Path::new(".")).display())]
    NoCa(PathBuf),
    /// A name that cannot be a certificate's CN and a file name.
    #[error("{name:?}: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A validity that is not a positive number of days (or too long).
    #[error("--days {0}: must be between 1 and 36500")]
    BadDays(u32),
    /// rcgen refused (a malformed key or CA certificate).
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// Who a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A field node: client certificate, CN = node id.
    Node,
    /// A researcher who pulls events: client certificate.
    Researcher,
    /// An operator who sends commands and updates: client certificate.
    Operator,
    /// The MQTT broker: server certificate for its host names.
    Broker,
}

impl Role {
    /// The subdirectory its files go to.
    pub fn dir_name(self) -> &'static str {
        match self {
            Role::Node => "nodes",
            Role::Researcher => "researchers",
            Role::Operator => "operators",
            Role::Broker => "brokers",
        }
    }
}

/// The files one step wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
    /// The CA certificate that verifies it.
    pub ca: PathBuf,
}

/// Longest name accepted (a CN may hold 64 characters).
const MAX_NAME: usize = 64;

/// Checks that `name` can be a CN, an MQTT topic level and a file name:
/// letters, digits, `.`, `_` and `-`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), PkiError> {
    let bad = |why| PkiError::BadName {
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(bad("is longer than 64 characters"));
    }
    if name.starts_with(['.', '-']) {
        return Err(bad("must not start with '.' or '-'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad(
            "may hold only letters, digits, '.', '_' and '-' (it is a CN, an MQTT topic level and a file name)",
        ));
    }
    Ok(())
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), PkiError> {
    if !(1..=36_500).contains(&days) {
        return Err(PkiError::BadDays(days));
    }
    // An hour of slack for clocks that are a little behind.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    // 16 random bytes, the top bit clear so the serial stays positive.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// The CA certificate and key paths of a PKI directory.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("private").join("ca.key"))
}

/// Makes a new CA in `dir`: `ca.pem` and `private/ca.key`. Refuses when
/// either exists.
pub fn init(dir: &Path, name: &str, days: u32) -> Result<Issued, PkiError> {
    let (ca_pem, ca_key) = ca_paths(dir);
    for p in [&ca_pem, &ca_key] {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(PkiError::BadName {
            name: name.to_string(),
            why: "a CA name must be 1 to 64 characters",
        });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, days)?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    create_private_dir(&dir.join("private"))?;
    write_new(&ca_key, key.serialize_pem().as_bytes(), true)?;
    write_new(&ca_pem, cert.pem().as_bytes(), false)?;
    Ok(Issued {
        cert: ca_pem.clone(),
        key: ca_key,
        ca: ca_pem,
    })
}

/// Issues a certificate for `role` signed by the CA in `dir`. `name` is the
/// CN (a node's id); `hosts` are a broker's DNS names or IP addresses (the
/// first is also its CN and file name).
pub fn issue(
    dir: &Path,
    role: Role,
    name: &str,
    hosts: &[String],
    days: u32,
) -> Result<Issued, PkiError> {
    check_name(name)?;
    let (ca_pem, ca_key) = ca_paths(dir);
    if !ca_pem.exists() || !ca_key.exists() {
        return Err(PkiError::NoCa(ca_pem));
    }
    let out = dir.join(role.dir_name());
    let cert_path = out.join(format!("{name}.pem"));
    let key_path = out.join(format!("{name}.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            return Err(PkiError::Exists(p.clone()));
        }
    }
    let ca_key_pair = KeyPair::from_pem(&read(&ca_key)?)?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_pem)?, ca_key_pair)?;

    let sans: Vec<String> = if role == Role::Broker {
        let mut v = vec![name.to_string()];
        v.extend(hosts.iter().filter(|h| h.as_str() != name).cloned());
        v
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if role == Role::Broker {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    validity(&mut params, days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    create_private_dir(&out)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(Issued {
        cert: cert_path,
        key: key_path,
        ca: ca_pem,
    })
}

#[cfg(test)]
mod tests;
