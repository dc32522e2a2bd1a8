use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::check;
use crate::mqtt::TlsFiles;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
    key: PathBuf,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).expect("self-signed");
    let pem = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&pem, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    Ca {
        issuer: Issuer::new(p, key),
        pem,
        key: key_path,
    }
}

/// A v3 client certificate for `cn`, valid `days` from `start_days` ago.
fn leaf(dir: &Path, ca: &Ca, cn: &str, start_days: i64, days: i64) -> TlsFiles {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(start_days);
    p.not_after = p.not_before + time::Duration::days(days);
    let cert = p.signed_by(&key, &ca.issuer).expect("sign");
    let files = TlsFiles {
        ca: ca.pem.clone(),
        cert: dir.join(format!("{cn}.pem")),
        key: dir.join(format!("{cn}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write");
    std::fs::write(&files.key, key.serialize_pem()).expect("write");
    files
}

fn problems(files: &TlsFiles, node: &str) -> String {
    check(files, node, SystemTime::now()).join("\n")
}

#[test]
fn a_v3_client_certificate_for_the_node_signed_by_the_ca_passes() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path(), "ca");
    let files = leaf(dir.path(), &ca, "n1", 1, 30);
    assert_eq!(problems(&files, "n1"), "");
}

#[test]
fn a_v1_certificate_from_plain_openssl_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path(), "ca");
    let key = dir.path().join("n1.key");
    let csr = dir.path().join("n1.csr");
    let cert = dir.path().join("n1.pem");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (Debian package openssl) runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req".as_ref(),
        "-new".as_ref(),
        "-newkey".as_ref(),
        "ec".as_ref(),
        "-pkeyopt".as_ref(),
        "ec_paramgen_curve:P-256".as_ref(),
        "-nodes".as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-subj".as_ref(),
        "/CN=n1".as_ref(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    run(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-CA".as_ref(),
        ca.pem.as_os_str(),
        "-CAkey".as_ref(),
        ca.key.as_os_str(),
        "-CAcreateserial".as_ref(),
        "-days".as_ref(),
        "30".as_ref(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    let files = TlsFiles {
        ca: ca.pem.clone(),
        cert,
        key,
    };
    let p = problems(&files, "n1");
    assert!(p.contains("X.509 v1") && p.contains("n1.pem"), "{p}");
    assert!(p.contains("field-tools pki issue-node"), "{p}");
}

#[test]
fn an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path(), "ca");
    let files = leaf(dir.path(), &ca, "n1", 40, 30);
    let p = problems(&files, "n1");
    assert!(p.contains("expired on"), "{p}");
    assert_eq!(p.lines().count(), 1, "{p}");
    // And one not valid yet, judged by the clock given.
    let early = SystemTime::now() - Duration::from_secs(3 * 86_400);
    let fresh = leaf(dir.path(), &ca, "n2", 1, 30);
    let p = check(&fresh, "n2", early).join("\n");
    assert!(p.contains("not valid before"), "{p}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path(), "ca");
    let mut files = leaf(dir.path(), &ca, "n1", 1, 30);
    files.key = leaf(dir.path(), &ca, "other", 1, 30).key;
    let p = problems(&files, "n1");
    assert!(p.contains("does not belong to the certificate"), "{p}");
    assert!(p.contains("other.key"), "{p}");
}

#[test]
fn a_cn_that_is_not_the_node_id_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = ca(dir.path(), "ca");
    let files = leaf(dir.path(), &ca, "n1", 1, 30);
    let p = problems(&files, "pump-7");
    assert!(
        p.contains("CN is \"n1\"") && p.contains("\"pump-7\""),
        "{p}"
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca1 = ca(dir.path(), "ca1");
    let ca2 = ca(dir.path(), "ca2");
    let mut files = leaf(dir.path(), &ca2, "n1", 1, 30);
    files.ca = ca1.pem.clone();
    let p = problems(&files, "n1");
    assert!(p.contains("does not accept it"), "{p}");
}

#[test]
fn missing_and_garbage_files_are_named_not_panics() {
    let dir = tempfile::tempdir().expect("tmp");
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let files = TlsFiles {
        ca: dir.path().join("missing-ca.pem"),
        cert: junk.clone(),
        key: junk,
    };
    let p = problems(&files, "n1");
    assert!(p.contains("missing-ca.pem"), "{p}");
    assert!(p.contains("junk.pem"), "{p}");
}
