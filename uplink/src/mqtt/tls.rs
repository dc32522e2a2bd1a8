//! Loads the mutual-TLS files of [`TlsFiles`] into a rustls client
//! configuration (ring provider, TLS 1.2 and 1.3). Every error names the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::TlsFiles;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or held no PEM object of the expected kind.
    #[error("TLS {what} {}: {reason}", path.display())]
    File {
        /// `ca`, `cert` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS configuration ({}, {}): {reason}", cert.display(), key.display())]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// Builds the client configuration: the CA as the only trust anchor, the
/// node's certificate and key as its identity.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in certs("ca", &files.ca)? {
        roots.add(ca).map_err(|e| TlsError::File {
            what: "ca",
            path: files.ca.clone(),
            reason: e.to_string(),
        })?;
    }
    let chain = certs("cert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "key",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let config_err = |reason: String| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| config_err(e.to_string()))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles {
            ca: dir.path().join("nope-ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let e = client_config(&files).expect_err("missing file accepted");
        assert!(e.to_string().contains("nope-ca.pem"), "{e}");
        assert!(e.to_string().contains("TLS ca"), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a pem file\n").expect("write");
        let files = TlsFiles {
            ca: ca.clone(),
            cert: ca.clone(),
            key: ca,
        };
        let e = client_config(&files).expect_err("garbage accepted");
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    }
}
