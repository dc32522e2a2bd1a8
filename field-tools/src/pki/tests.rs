use super::*;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

fn der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).expect("pem");
    pem.contents
}

fn cn(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_node_certificate_is_v3_named_after_the_node_and_signed_by_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = init(dir.path(), "Station CA", 3650).expect("init");
    let node = issue(dir.path(), Role::Node, "pump-07", &[], 825).expect("issue");
    assert_eq!(node.ca, ca.cert);
    assert_eq!(node.cert, dir.path().join("nodes/pump-07.pem"));

    let ca_der = der(&ca.cert);
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).expect("ca parses");
    assert_eq!(ca_cert.version(), X509Version::V3);
    assert!(ca_cert.is_ca());

    let node_der = der(&node.cert);
    let (_, cert) = X509Certificate::from_der(&node_der).expect("node parses");
    assert_eq!(cert.version(), X509Version::V3);
    assert_eq!(cn(&cert), "pump-07");
    assert_eq!(cert.issuer(), ca_cert.subject());
    assert!(!cert.is_ca());
    cert.verify_signature(Some(ca_cert.public_key()))
        .expect("the CA's signature verifies");
    let eku = cert
        .extended_key_usage()
        .expect("eku parses")
        .expect("eku present");
    assert!(eku.value.client_auth && !eku.value.server_auth);
    assert!(cert.validity().is_valid());
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 825, "1 h of slack before now, 825 days after");
}

#[test]
fn rustls_accepts_the_node_identity_the_uplink_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    init(dir.path(), "Station CA", 3650).expect("init");
    let node = issue(dir.path(), Role::Node, "n1", &[], 30).expect("issue");
    let files = uplink::mqtt::TlsFiles {
        ca: node.ca.clone(),
        cert: node.cert.clone(),
        key: node.key.clone(),
    };
    uplink::mqtt::tls::client_config(&files).expect("rustls takes the files");
}

#[test]
fn a_broker_certificate_is_for_the_server_and_names_its_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    init(dir.path(), "Station CA", 3650).expect("init");
    let b = issue(
        dir.path(),
        Role::Broker,
        "localhost",
        &["127.0.0.1".to_string(), "localhost".to_string()],
        365,
    )
    .expect("issue");
    let d = der(&b.cert);
    let (_, cert) = X509Certificate::from_der(&d).expect("parses");
    let eku = cert.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.server_auth && !eku.value.client_auth);
    let san = cert
        .subject_alternative_name()
        .expect("san parses")
        .expect("san present");
    use x509_parser::extensions::GeneralName;
    let names = &san.value.general_names;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .any(|g| matches!(g, GeneralName::DNSName("localhost"))),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|g| matches!(g, GeneralName::IPAddress(ip) if *ip == [127u8, 0, 0, 1])),
        "{names:?}"
    );
}

#[cfg(unix)]
#[test]
fn keys_are_private_and_nothing_is_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = init(dir.path(), "Station CA", 3650).expect("init");
    let r = issue(dir.path(), Role::Researcher, "ana", &[], 30).expect("issue");
    for key in [&ca.key, &r.key] {
        let mode = std::fs::metadata(key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let private = std::fs::metadata(dir.path().join("private"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(private & 0o777, 0o700);

    let before = std::fs::read(&ca.key).expect("read");
    assert!(matches!(
        init(dir.path(), "Other CA", 3650),
        Err(PkiError::Exists(_))
    ));
    assert_eq!(std::fs::read(&ca.key).expect("read"), before);
    let cert_before = std::fs::read(&r.cert).expect("read");
    assert!(matches!(
        issue(dir.path(), Role::Researcher, "ana", &[], 30),
        Err(PkiError::Exists(_))
    ));
    assert_eq!(std::fs::read(&r.cert).expect("read"), cert_before);
}

#[test]
fn names_that_cannot_be_a_topic_level_or_a_file_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    init(dir.path(), "Station CA", 3650).expect("init");
    for bad in [
        "",
        "a/b",
        "n+1",
        "#",
        "../x",
        ".hidden",
        "-x",
        "sp ace",
        &"x".repeat(65),
    ] {
        let e = issue(dir.path(), Role::Node, bad, &[], 30).expect_err(bad);
        assert!(matches!(e, PkiError::BadName { .. }), "{bad:?}: {e}");
    }
    assert!(matches!(
        issue(dir.path(), Role::Node, "ok", &[], 0),
        Err(PkiError::BadDays(0))
    ));
    assert!(!dir.path().join("nodes/ok.pem").exists());
}

#[test]
fn issuing_without_a_ca_says_to_run_init() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = issue(dir.path(), Role::Node, "n1", &[], 30).expect_err("no ca");
    assert!(matches!(e, PkiError::NoCa(_)), "{e}");
    assert!(e.to_string().contains("pki init"), "{e}");
}

#[test]
fn a_corrupt_ca_key_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = init(dir.path(), "Station CA", 3650).expect("init");
    std::fs::remove_file(&ca.key).expect("rm");
    std::fs::write(
        &ca.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let e = issue(dir.path(), Role::Node, "n1", &[], 30).expect_err("bad key");
    assert!(matches!(e, PkiError::Cert(_)), "{e}");
    assert!(!dir.path().join("nodes/n1.pem").exists());
}
