//! One test per attack in TUF's list (theupdateframework.io, "Security"),
//! against the bundle verifier and the trust root; each must be refused
//! with its own reason, and leave the trust state unchanged.

use ed25519_dalek::SigningKey;
use models::bundle::keys::generate;
use models::bundle::{
    Bundle, Expect, Kind, Metadata, ModelTarget, Refusal, Role, Root, SettingsPatch, SignedRoot,
    Target, TrustState, verify_bundle,
};

const NOW: u64 = 1_800_000_000;
const CAP: u64 = 1 << 20;

fn key(n: u8) -> SigningKey {
    generate([n; 32])
}

fn role(keys: &[&SigningKey], threshold: u8) -> Role {
    Role {
        keys: keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
        threshold,
    }
}

/// Root v1: root keys 1, 2 (threshold 2); bundle keys 10, 11 (threshold 2).
fn root_v1() -> SignedRoot {
    let root = Root {
        version: 1,
        expires_s: NOW + 365 * 86_400,
        root: role(&[&key(1), &key(2)], 2),
        bundles: role(&[&key(10), &key(11)], 2),
    };
    SignedRoot::parse(&root.sign(&[&key(1), &key(2)]).unwrap()).unwrap()
}

fn target() -> ModelTarget {
    ModelTarget {
        family: "fusion".into(),
        features: "fieldnode-features-2".into(),
        classes: vec![
            "wildlife".into(),
            "machinery_anomaly".into(),
            "human_activity".into(),
            "background".into(),
        ],
    }
}

fn expect() -> Expect {
    Expect {
        firmware: [0, 1, 0],
        model: target(),
    }
}

fn meta(version: u64) -> Metadata {
    Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version,
        created_s: NOW - 3600,
        expires_s: NOW + 30 * 86_400,
        target: Target {
            min_firmware: [0, 1, 0],
            model: Some(target()),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 200,
        self_tests: Vec::new(),
        manifest: None,
    }
}

fn model_bundle(version: u64, payload: &[u8], signers: &[&SigningKey]) -> Bundle {
    let mut b = Bundle::new(meta(version), payload.to_vec());
    for k in signers {
        b.sign(k);
    }
    b
}

fn verify(state: &TrustState, bytes: &[u8]) -> Result<Bundle, Refusal> {
    verify_bundle(state, bytes, &expect(), state.time_floor(NOW, 0), CAP)
}

#[test]
fn a_well_signed_bundle_is_taken() {
    let state = TrustState::new(root_v1());
    let b = model_bundle(3, b"onnx bytes", &[&key(10), &key(11)]);
    let got = verify(&state, &b.to_bytes().unwrap()).unwrap();
    assert_eq!(got.payload, b"onnx bytes");
    assert_eq!(got.meta.version, 3);
}

#[test]
fn arbitrary_payload_is_refused() {
    let state = TrustState::new(root_v1());
    let b = model_bundle(3, b"the real model", &[&key(10), &key(11)]);
    // Same length, other bytes.
    let mut bytes = b.to_bytes().unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x55;
    assert_eq!(
        verify(&state, &bytes).unwrap_err(),
        Refusal::Payload { what: "sha256" }
    );
    // Another length.
    let mut bytes = b.to_bytes().unwrap();
    bytes.extend_from_slice(b"more");
    assert_eq!(
        verify(&state, &bytes).unwrap_err(),
        Refusal::Payload { what: "length" }
    );
    // Metadata describing the attacker's payload, signed by keys the root
    // does not know.
    let evil = model_bundle(3, b"the attacker's model", &[&key(66), &key(67)]);
    assert_eq!(
        verify(&state, &evil.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 0,
            needed: 2
        }
    );
}

#[test]
fn endless_data_is_refused_without_reading_past_the_cap() {
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0x42);
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let state = TrustState::new(root_v1());
    let mut src = Endless(0);
    let err = verify_bundle(&state, &mut src, &expect(), NOW, 4096).unwrap_err();
    assert_eq!(err, Refusal::TooLarge { limit: 4096 });
    assert!(src.0 <= 4096 + 8192, "read {} bytes", src.0);
    // A signed length over the cap is refused from the metadata alone.
    let big = model_bundle(3, &[0u8; 5000], &[&key(10), &key(11)]);
    let err = state
        .check_metadata(&big, &expect(), NOW, 4096)
        .unwrap_err();
    assert_eq!(err, Refusal::TooLarge { limit: 4096 });
}

#[test]
fn rollback_is_refused_also_after_a_restart() {
    let mut state = TrustState::new(root_v1());
    let v3 = model_bundle(3, b"v3", &[&key(10), &key(11)]);
    let taken = verify(&state, &v3.to_bytes().unwrap()).unwrap();
    state.record(&taken.meta);
    // The state as persisted and read back at the next start.
    let state = TrustState::from_bytes(&state.to_bytes().unwrap()).unwrap();
    for v in [1, 2, 3] {
        let old = model_bundle(v, b"old", &[&key(10), &key(11)]);
        assert_eq!(
            verify(&state, &old.to_bytes().unwrap()).unwrap_err(),
            Refusal::Rollback {
                installed: 3,
                offered: v
            }
        );
    }
    assert!(
        verify(
            &state,
            &model_bundle(4, b"v4", &[&key(10), &key(11)])
                .to_bytes()
                .unwrap()
        )
        .is_ok()
    );
}

#[test]
fn indefinite_freeze_is_refused_even_with_the_clock_set_back() {
    let mut state = TrustState::new(root_v1());
    let mut m = meta(5);
    m.expires_s = NOW - 1;
    let mut stale = Bundle::new(m, b"stale".to_vec());
    stale.sign(&key(10));
    stale.sign(&key(11));
    assert_eq!(
        verify(&state, &stale.to_bytes().unwrap()).unwrap_err(),
        Refusal::Expired {
            expires_s: NOW - 1,
            floor_s: NOW
        }
    );
    // A clock reset to 1970 does not revive it: the last verified metadata
    // time is a floor...
    let mut fresh = meta(4);
    fresh.created_s = NOW;
    let mut b = Bundle::new(fresh, b"v4".to_vec());
    b.sign(&key(10));
    b.sign(&key(11));
    state.record(&verify(&state, &b.to_bytes().unwrap()).unwrap().meta);
    let floor = state.time_floor(0, 0);
    assert_eq!(floor, NOW);
    let err = verify_bundle(
        &state,
        &stale.to_bytes().unwrap()[..],
        &expect(),
        floor,
        CAP,
    )
    .unwrap_err();
    assert_eq!(err.code(), "expired");
    // ...and so is the build time.
    let blank = TrustState::new(root_v1());
    let floor = blank.time_floor(0, NOW);
    let err = verify_bundle(
        &blank,
        &stale.to_bytes().unwrap()[..],
        &expect(),
        floor,
        CAP,
    )
    .unwrap_err();
    assert_eq!(err.code(), "expired");
}

#[test]
fn fast_forward_cannot_lock_out_real_updates() {
    let mut state = TrustState::new(root_v1());
    let before = state.to_bytes().unwrap();
    // A huge version signed by one trusted key and one stranger.
    let ff = model_bundle(u64::MAX, b"ff", &[&key(10), &key(66)]);
    assert_eq!(
        verify(&state, &ff.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 1,
            needed: 2
        }
    );
    // A huge version whose payload was swapped after signing.
    let mut ff = model_bundle(u64::MAX, b"ff", &[&key(10), &key(11)]);
    ff.payload = b"xx".to_vec();
    assert_eq!(
        verify(&state, &ff.to_bytes().unwrap()).unwrap_err().code(),
        "payload_mismatch"
    );
    // Nothing refused moved the state; the next real version is taken.
    assert_eq!(state.to_bytes().unwrap(), before);
    let real = verify(
        &state,
        &model_bundle(3, b"v3", &[&key(10), &key(11)])
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    state.record(&real.meta);
    assert_eq!(state.installed(Kind::Model, "fusion"), 3);
}

#[test]
fn mix_and_match_is_refused() {
    let state = TrustState::new(root_v1());
    let a = model_bundle(3, b"model A", &[&key(10), &key(11)]);
    let b = model_bundle(4, b"model B, longer", &[&key(10), &key(11)]);
    // A's metadata with B's payload.
    let mut mixed = a.clone();
    mixed.payload = b.payload.clone();
    assert_eq!(
        verify(&state, &mixed.to_bytes().unwrap())
            .unwrap_err()
            .code(),
        "payload_mismatch"
    );
    // A's metadata with B's signatures.
    let mut mixed = a.clone();
    mixed.sigs = b.sigs.clone();
    assert_eq!(
        verify(&state, &mixed.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 0,
            needed: 2
        }
    );
}

#[test]
fn wrong_target_is_refused() {
    let state = TrustState::new(root_v1());
    type Change = Box<dyn Fn(&mut Metadata)>;
    let cases: Vec<(&str, Change)> = vec![
        ("firmware", Box::new(|m| m.target.min_firmware = [9, 0, 0])),
        (
            "family",
            Box::new(|m| {
                m.name = "other".into();
                if let Some(t) = m.target.model.as_mut() {
                    t.family = "other".into();
                }
            }),
        ),
        (
            "features",
            Box::new(|m| {
                if let Some(t) = m.target.model.as_mut() {
                    t.features = "fieldnode-features-1".into();
                }
            }),
        ),
        (
            "classes",
            Box::new(|m| {
                if let Some(t) = m.target.model.as_mut() {
                    t.classes.pop();
                }
            }),
        ),
        ("no model target", Box::new(|m| m.target.model = None)),
        (
            "settings with a model target",
            Box::new(|m| m.kind = Kind::Settings),
        ),
    ];
    for (what, change) in cases {
        let mut m = meta(3);
        change(&mut m);
        let mut b = Bundle::new(m, b"x".to_vec());
        b.sign(&key(10));
        b.sign(&key(11));
        let err = verify(&state, &b.to_bytes().unwrap()).unwrap_err();
        assert_eq!(err.code(), "wrong_target", "{what}: {err}");
    }
}

#[test]
fn key_compromise_below_the_threshold_is_refused() {
    let state = TrustState::new(root_v1());
    // One stolen key alone.
    let one = model_bundle(3, b"x", &[&key(10)]);
    assert_eq!(
        verify(&state, &one.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 1,
            needed: 2
        }
    );
    // The stolen key's signature twice.
    let mut twice = one.clone();
    twice.sigs.push(twice.sigs[0].clone());
    assert_eq!(
        verify(&state, &twice.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 1,
            needed: 2
        }
    );
    // The stolen key plus a forged signature under the other key's id.
    let mut forged = one.clone();
    let mut fake = forged.sigs[0].clone();
    fake.key = models::bundle::keys::key_id(&key(11).verifying_key());
    forged.sigs.push(fake);
    assert_eq!(
        verify(&state, &forged.to_bytes().unwrap()).unwrap_err(),
        Refusal::Signatures {
            found: 1,
            needed: 2
        }
    );
    // Root keys do not sign bundles.
    let by_root = model_bundle(3, b"x", &[&key(1), &key(2)]);
    assert_eq!(
        verify(&state, &by_root.to_bytes().unwrap())
            .unwrap_err()
            .code(),
        "signatures"
    );
}

fn root_v2(signers: &[&SigningKey], version: u64) -> Vec<u8> {
    // Rotates the bundle keys to 12, 13 and root key 2 to 3.
    Root {
        version,
        expires_s: NOW + 365 * 86_400,
        root: role(&[&key(1), &key(3)], 2),
        bundles: role(&[&key(12), &key(13)], 2),
    }
    .sign(signers)
    .unwrap()
}

#[test]
fn a_tampered_root_is_refused() {
    let v1 = root_v1();
    // Any flipped byte in a root file.
    for i in 0..v1.bytes.len() {
        let mut bytes = v1.bytes.clone();
        bytes[i] ^= 0x01;
        assert!(SignedRoot::parse(&bytes).is_err(), "flip at {i} accepted");
    }
    let mut state = TrustState::new(v1);
    let before = state.to_bytes().unwrap();
    // Signed by the new root keys only: the current ones did not agree.
    let only_new = SignedRoot::parse(&root_v2(&[&key(1), &key(3)], 2)).unwrap();
    let err = state.rotate_root(only_new).unwrap_err();
    assert!(err.to_string().contains("current root"), "{err}");
    // Signed by the current keys only: the new root is not self-signed.
    assert!(SignedRoot::parse(&root_v2(&[&key(1), &key(2)], 2)).is_err());
    // Skipping a version.
    let skip = SignedRoot::parse(&root_v2(&[&key(1), &key(2), &key(3)], 3)).unwrap();
    assert!(
        state
            .rotate_root(skip)
            .unwrap_err()
            .to_string()
            .contains("does not follow")
    );
    assert_eq!(state.to_bytes().unwrap(), before);
    // A proper rotation: old bundle keys stop counting, new ones count.
    let v2 = SignedRoot::parse(&root_v2(&[&key(1), &key(2), &key(3)], 2)).unwrap();
    state.rotate_root(v2).unwrap();
    let state = TrustState::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(state.root.root.version, 2);
    let old_keys = model_bundle(3, b"x", &[&key(10), &key(11)]);
    assert_eq!(
        verify(&state, &old_keys.to_bytes().unwrap())
            .unwrap_err()
            .code(),
        "signatures"
    );
    assert!(
        verify(
            &state,
            &model_bundle(3, b"x", &[&key(12), &key(13)])
                .to_bytes()
                .unwrap()
        )
        .is_ok()
    );
}

#[test]
fn an_expired_root_vouches_for_nothing() {
    let root = Root {
        version: 1,
        expires_s: NOW - 10,
        root: role(&[&key(1)], 1),
        bundles: role(&[&key(10)], 1),
    };
    let state = TrustState::new(SignedRoot::parse(&root.sign(&[&key(1)]).unwrap()).unwrap());
    let b = model_bundle(3, b"x", &[&key(10)]);
    assert_eq!(
        verify(&state, &b.to_bytes().unwrap()).unwrap_err().code(),
        "root_expired"
    );
}

#[test]
fn a_settings_bundle_with_two_signatures_fits_one_sbd_message() {
    let patch = SettingsPatch {
        thresholds: vec![
            (messages::EventClass::Wildlife, 600),
            (messages::EventClass::MachineryAnomaly, 700),
            (messages::EventClass::HumanActivity, 550),
        ],
        exclude: Some(vec![messages::EventClass::Background]),
        camera_interval_ms: Some(1000),
        climate_interval_ms: Some(30_000),
        update_min_soc: Some(600),
        ..SettingsPatch::default()
    };
    let m = Metadata::settings("settings", 1_000_000, NOW, NOW + 90 * 86_400, [0, 1, 0]);
    let mut b = Bundle::new(m, patch.to_bytes());
    b.sign(&key(10));
    b.sign(&key(11));
    let bytes = b.to_bytes().unwrap();
    assert!(
        bytes.len() <= models::bundle::settings::SBD_MT_MAX,
        "{} bytes",
        bytes.len()
    );
    let state = TrustState::new(root_v1());
    let got = verify(&state, &bytes).unwrap();
    assert_eq!(SettingsPatch::from_bytes(&got.payload).unwrap(), patch);
}
