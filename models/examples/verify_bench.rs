//! Measures the verifier on a bundle carrying the committed 4-bit model
//! (about 290 KB): whole-file verification (signatures, SHA-256, checks) and its
//! parts, on this machine. `cargo run --release -p models --example
//! verify_bench [ROUNDS]`.

use std::time::Instant;

use models::bundle::keys::generate;
use models::bundle::{
    Bundle, Expect, Kind, Metadata, ModelTarget, Role, Root, SettingsPatch, SignedRoot, Target,
    TrustState, verify_bundle,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let payload = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fusion/fusion.int4.onnx"
    ))
    .unwrap_or_else(|_| vec![0x5a; 100_000]);
    let k: Vec<_> = (1..=4u8).map(|n| generate([n; 32])).collect();
    let role = |keys: &[usize], t| Role {
        keys: keys
            .iter()
            .map(|&i| k[i].verifying_key().to_bytes())
            .collect(),
        threshold: t,
    };
    let root = Root {
        version: 1,
        expires_s: u64::MAX,
        root: role(&[0, 1], 2),
        bundles: role(&[2, 3], 2),
    };
    let state = TrustState::new(
        SignedRoot::parse(&root.sign(&[&k[0], &k[1]]).unwrap_or_default()).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        }),
    );
    let target = ModelTarget {
        family: "fusion".into(),
        features: "fieldnode-features-2".into(),
        classes: vec!["a".into()],
    };
    let meta = Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version: 2,
        created_s: 1,
        expires_s: u64::MAX,
        target: Target {
            min_firmware: [0, 0, 0],
            model: Some(target.clone()),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 100,
        self_tests: Vec::new(),
        manifest: None,
    };
    let mut b = Bundle::new(meta.clone(), payload.clone());
    b.sign(&k[2]);
    b.sign(&k[3]);
    let bytes = b.to_bytes().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let expect = Expect {
        firmware: [0, 1, 0],
        model: target,
    };
    let mut whole = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let ok = verify_bundle(&state, &bytes[..], &expect, 2, 1 << 26).is_ok();
        whole.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(ok);
    }
    let mut header = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let ok = state.check_metadata(&b, &expect, 2, 1 << 26).is_ok();
        header.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(ok);
    }
    let mut settings = Bundle::new(
        Metadata {
            kind: Kind::Settings,
            name: "settings".into(),
            target: Target {
                min_firmware: [0, 0, 0],
                model: None,
            },
            quantization: String::new(),
            latency_p99_us: 0,
            ..meta
        },
        SettingsPatch {
            thresholds: vec![(messages::EventClass::Wildlife, 600)],
            ..SettingsPatch::default()
        }
        .to_bytes(),
    );
    settings.sign(&k[2]);
    settings.sign(&k[3]);
    println!("bundle_bytes {}", bytes.len());
    println!("payload_bytes {}", payload.len());
    println!("verify_whole_median_us {:.0}", median(whole));
    println!(
        "verify_signatures_and_checks_median_us {:.0}",
        median(header)
    );
    println!(
        "settings_bundle_bytes_two_signatures {}",
        settings
            .to_bytes()
            .unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1)
            })
            .len()
    );
}
