//! Mutation fuzzing of the bundle, root and trust-state parsers and of the
//! verifier: random bit flips, overwrites, cuts and insertions of valid
//! files must give an error, never a panic, and never an accepted file that
//! differs from the one that was signed.
//!
//! The default run is short; `MODELS_FUZZ_ITERATIONS=N` runs longer
//! (docs/reliability.md).

use models::bundle::keys::generate;
use models::bundle::{
    Bundle, Expect, Kind, Metadata, ModelTarget, Role, Root, SelfTest, SignedRoot, Target,
    TrustState, verify_bundle,
};
use rand::{Rng, SeedableRng};

const NOW: u64 = 1_800_000_000;

fn iterations() -> u64 {
    std::env::var("MODELS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

fn mutate(rng: &mut rand_chacha::ChaCha8Rng, original: &[u8]) -> Vec<u8> {
    let mut v = original.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            2 => {
                let n = rng.random_range(0..=v.len());
                v.truncate(n);
            }
            3 => {
                let i = rng.random_range(0..=v.len());
                let n = rng.random_range(1..9);
                for _ in 0..n {
                    v.insert(i, rng.random());
                }
            }
            _ if v.len() > 6 => {
                // Lengths and counts are where parsers go wrong.
                let i = rng.random_range(4..7);
                v[i] = [0x00, 0xff, 0x7f, 0x80][rng.random_range(0..4)];
            }
            _ => {}
        }
    }
    v
}

#[test]
fn mutated_files_are_refused_and_never_panic() {
    let k = |n: u8| generate([n; 32]);
    let role = |keys: &[u8], threshold| Role {
        keys: keys
            .iter()
            .map(|&n| k(n).verifying_key().to_bytes())
            .collect(),
        threshold,
    };
    let root = Root {
        version: 1,
        expires_s: NOW + 86_400,
        root: role(&[1, 2], 2),
        bundles: role(&[10, 11], 2),
    };
    let root_bytes = root.sign(&[&k(1), &k(2)]).unwrap();
    let state = TrustState::new(SignedRoot::parse(&root_bytes).unwrap());
    let state_bytes = state.to_bytes().unwrap();
    let target = ModelTarget {
        family: "fusion".into(),
        features: "f1".into(),
        classes: vec!["a".into(), "b".into()],
    };
    let meta = Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version: 2,
        created_s: NOW,
        expires_s: NOW + 86_400,
        target: Target {
            min_firmware: [0, 1, 0],
            model: Some(target.clone()),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 100,
        self_tests: vec![SelfTest {
            inputs: vec![vec![0.5; 4], vec![1.0; 2]],
            expected_class: 1,
            probabilities: vec![0.1, 0.9],
            tolerance: 0.01,
        }],
        manifest: Some("name = \"fusion\"".into()),
    };
    let mut bundle = Bundle::new(meta, b"some model bytes".to_vec());
    bundle.sign(&k(10));
    bundle.sign(&k(11));
    let bundle_bytes = bundle.to_bytes().unwrap();
    let expect = Expect {
        firmware: [0, 1, 0],
        model: target,
    };
    assert!(verify_bundle(&state, &bundle_bytes[..], &expect, NOW, 1 << 20).is_ok());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let mut accepted_same = 0;
    for _ in 0..iterations() {
        let b = mutate(&mut rng, &bundle_bytes);
        let _ = Bundle::parse(&b);
        let _ = Bundle::parse_header(&b);
        if let Ok(got) = verify_bundle(&state, &b[..], &expect, NOW, 1 << 20) {
            assert_eq!(
                got.to_bytes().unwrap(),
                bundle_bytes,
                "a changed bundle was accepted"
            );
            accepted_same += 1;
        }
        let r = mutate(&mut rng, &root_bytes);
        if let Ok(parsed) = SignedRoot::parse(&r) {
            assert_eq!(parsed.root, root, "a changed root was accepted");
        }
        let s = mutate(&mut rng, &state_bytes);
        let _ = TrustState::from_bytes(&s);
    }
    // Only mutations that leave the file as it was (a cut at its full
    // length, a byte overwritten with itself) may pass: a few percent.
    assert!(accepted_same * 10 < iterations(), "{accepted_same}");
}
