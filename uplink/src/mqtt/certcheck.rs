//! Checks a node's mutual-TLS files before the link needs them, so that
//! `fieldnode check-config` finds what the broker or rustls would refuse at
//! run time: PEM that does not parse, an X.509 v1 certificate, one outside
//! its validity period, a key that is not the certificate's, a certificate
//! the CA did not sign (or not for client authentication), and a common
//! name that is not the node id (the broker's ACL reads the CN as the user).
//! Every problem names the file and says what to do.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

use super::config::TlsFiles;

/// What `field-tools pki` would make instead.
const FIX_ISSUE: &str = "issue one with `field-tools pki issue-node ID`";

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no CERTIFICATE in the file (a PEM block `-----BEGIN CERTIFICATE-----` is expected)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Checks one parsed certificate: version, validity period and (for the
/// node's) its CN.
fn check_one(
    path: &Path,
    what: &str,
    der: &[u8],
    now_s: i64,
    cn: Option<&str>,
    out: &mut Vec<String>,
) {
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            out.push(format!(
                "{}: the {what} certificate is not valid X.509: {e}",
                path.display()
            ));
            return;
        }
    };
    if cert.version() != X509Version::V3 {
        out.push(format!(
            "{}: the {what} certificate is X.509 v{} (rustls accepts only v3; `openssl x509 -req` without `-extfile` makes v1); {FIX_ISSUE}",
            path.display(),
            cert.version().0 + 1
        ));
    }
    let v = cert.validity();
    if now_s < v.not_before.timestamp() {
        out.push(format!(
            "{}: the {what} certificate is not valid before {} (is the clock right?)",
            path.display(),
            v.not_before
        ));
    }
    if now_s > v.not_after.timestamp() {
        out.push(format!(
            "{}: the {what} certificate expired on {}; {FIX_ISSUE}",
            path.display(),
            v.not_after
        ));
    }
    if let Some(id) = cn {
        let got: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .filter_map(|c| c.as_str().ok())
            .collect();
        if got != [id] {
            out.push(format!(
                "{}: the certificate's CN is {} but the node id is {id:?}: the broker's ACL reads the CN as the node; {FIX_ISSUE} with the node id, or set the node id to the CN",
                path.display(),
                if got.is_empty() {
                    "missing".to_string()
                } else {
                    format!("{:?}", got.join(", "))
                },
            ));
        }
    }
}

/// Every problem with `files` for node `node_id` at `now`; empty when the
/// link would accept them.
pub fn check(files: &TlsFiles, node_id: &str, now: SystemTime) -> Vec<String> {
    let mut out = Vec::new();
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let cas = match read_certs(&files.ca) {
        Ok(c) => c,
        Err(e) => {
            out.push(e);
            Vec::new()
        }
    };
    for ca in &cas {
        check_one(&files.ca, "CA", ca, now_s, None, &mut out);
    }
    let chain = match read_certs(&files.cert) {
        Ok(c) => c,
        Err(e) => {
            out.push(e);
            Vec::new()
        }
    };
    if let Some(leaf) = chain.first() {
        check_one(&files.cert, "node", leaf, now_s, Some(node_id), &mut out);
    }
    for extra in chain.iter().skip(1) {
        check_one(&files.cert, "intermediate", extra, now_s, None, &mut out);
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match PrivateKeyDer::from_pem_file(&files.key) {
        Err(e) => out.push(format!(
            "{}: no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            files.key.display()
        )),
        Ok(key) => match provider.key_provider.load_private_key(key) {
            Err(e) => out.push(format!(
                "{}: the key cannot be used: {e}",
                files.key.display()
            )),
            Ok(signer) => {
                if let (Some(spki), Some(leaf)) = (signer.public_key(), chain.first())
                    && let Ok((_, cert)) = X509Certificate::from_der(leaf)
                    && cert.public_key().raw != spki.as_ref()
                {
                    out.push(format!(
                        "{}: the key does not belong to the certificate {}; use the key issued with it",
                        files.key.display(),
                        files.cert.display()
                    ));
                }
            }
        },
    }

    // The CA must verify the node's certificate for client authentication.
    if let Some(leaf) = chain.first()
        && !cas.is_empty()
    {
        let mut roots = RootCertStore::empty();
        let (_, refused) = roots.add_parsable_certificates(cas.iter().cloned());
        if refused > 0 {
            out.push(format!(
                "{}: {refused} CA certificate(s) cannot be trust anchors",
                files.ca.display()
            ));
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build();
        match verifier {
            Err(e) => out.push(format!(
                "{}: no usable CA certificate: {e}",
                files.ca.display()
            )),
            Ok(v) => {
                let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(now_s).unwrap_or(0),
                ));
                // Expiry and version are reported above in plainer words.
                if let Err(e) = v.verify_client_cert(leaf, &chain[1..], t) {
                    let why = e.to_string();
                    let known = ["expired", "not valid yet", "UnsupportedCertVersion"];
                    if !known.iter().any(|k| why.contains(k)) {
                        out.push(format!(
                            "{}: the CA in {} does not accept it as a client certificate: {why}; {FIX_ISSUE}",
                            files.cert.display(),
                            files.ca.display()
                        ));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
