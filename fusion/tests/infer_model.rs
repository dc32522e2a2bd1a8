//! The tiny 4-bit fixture (tests/data/tiny_fusion.onnx, made by
//! models/tools/make_test_model.py) through the installed ONNX Runtime:
//! outputs equal a reference computed here from the raw quantized weights,
//! the model is checked against its specification, bad models and bad input
//! are typed errors, and the session survives release and wake.
//!
//! All tests in this process share one loaded library (ort's is global).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fusion::infer::{
    Accelerator, BurstRunner, InferError, IoSpec, LifecycleConfig, NamedTensors, OrtBackend,
    OrtConfig, Status, TensorF32, library,
};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn real_library() -> PathBuf {
    library::resolve(None)
        .expect("ONNX Runtime is installed (scripts/install-onnxruntime) or ORT_DYLIB_PATH is set")
        .path
}

fn spec() -> OrtConfig {
    OrtConfig {
        library_path: Some(real_library()),
        model_path: data("tiny_fusion.onnx"),
        inputs: vec![
            IoSpec::f32("x", &[-1, 64]).unwrap(),
            IoSpec::f32("m", &[-1, 3]).unwrap(),
        ],
        outputs: vec![
            IoSpec::f32("probs", &[-1, 4]).unwrap(),
            IoSpec::f32("hidden", &[-1, 16]).unwrap(),
        ],
        intra_threads: 1,
    }
}

/// Deterministic inputs for `rows` rows.
fn inputs(rows: usize) -> NamedTensors {
    let x = (0..rows * 64)
        .map(|i| ((i as f32) * 0.37).sin() * 1.5)
        .collect();
    let m = (0..rows * 3)
        .map(|i| {
            if (i * 7 + rows).is_multiple_of(3) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    NamedTensors::new()
        .with("x", TensorF32::matrix(rows, 64, x).unwrap())
        .with("m", TensorF32::matrix(rows, 3, m).unwrap())
}

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in tiny_fusion.json"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Recomputes (probs, hidden) in f64 from the raw weights in
/// tiny_fusion.json, dequantizing the 4-bit layer here (low nibble first,
/// zero point 8, one scale per block of 32 along K).
fn reference(inputs: &NamedTensors) -> (Vec<f64>, Vec<f64>) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(data("tiny_fusion.json")).unwrap()).unwrap();
    let k = json["k"].as_u64().unwrap() as usize;
    let nh = json["n_hidden"].as_u64().unwrap() as usize;
    let nc = json["classes"].as_u64().unwrap() as usize;
    let nm = json["mask"].as_u64().unwrap() as usize;
    let block = json["block_size"].as_u64().unwrap() as usize;
    let zp = json["zero_point"].as_f64().unwrap();
    let packed = floats(&json, "w1_packed");
    let scales = floats(&json, "w1_scales");
    let (b1, w2, w3, b2) = (
        floats(&json, "b1"),
        floats(&json, "w2"),
        floats(&json, "w3"),
        floats(&json, "b2"),
    );
    let blocks = k / block;
    let mut w1 = vec![0.0f64; nh * k];
    for n in 0..nh {
        for b in 0..blocks {
            for j in 0..block / 2 {
                let byte = packed[(n * blocks + b) * (block / 2) + j] as u8;
                let s = scales[n * blocks + b];
                w1[n * k + b * block + 2 * j] = ((byte & 0xf) as f64 - zp) * s;
                w1[n * k + b * block + 2 * j + 1] = ((byte >> 4) as f64 - zp) * s;
            }
        }
    }
    let x = inputs.get("x").unwrap();
    let m = inputs.get("m").unwrap();
    let (mut probs, mut hidden) = (Vec::new(), Vec::new());
    for r in 0..x.rows() {
        let xr = x.row(r).unwrap();
        let mr = m.row(r).unwrap();
        let h: Vec<f64> = (0..nh)
            .map(|n| {
                let dot: f64 = (0..k).map(|i| xr[i] as f64 * w1[n * k + i]).sum();
                (dot + b1[n]).max(0.0)
            })
            .collect();
        let logits: Vec<f64> = (0..nc)
            .map(|c| {
                let a: f64 = (0..nh).map(|i| h[i] * w2[i * nc + c]).sum();
                let b: f64 = (0..nm).map(|i| mr[i] as f64 * w3[i * nc + c]).sum();
                a + b + b2[c]
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        probs.extend(e.iter().map(|v| v / sum));
        hidden.extend(h);
    }
    (probs, hidden)
}

fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name} length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{name}[{i}]: got {g}, reference {w}"
        );
    }
}

#[test]
fn outputs_match_the_reference_at_batch_1_and_8() {
    let mut backend = OrtBackend::new(spec()).unwrap();
    backend.wake().unwrap();
    for rows in [1, 8] {
        let batch = inputs(rows);
        let out = backend.run(&batch).unwrap();
        let (probs, hidden) = reference(&batch);
        let p = out.get("probs").unwrap();
        let h = out.get("hidden").unwrap();
        assert_eq!(p.shape(), &[rows, 4]);
        assert_eq!(h.shape(), &[rows, 16]);
        assert_close("probs", p.data(), &probs, 1e-4);
        assert_close("hidden", h.data(), &hidden, 1e-3);
        // The reference must be able to tell rows apart (the test would pass
        // on a constant output otherwise).
        if rows == 8 {
            assert!((probs[0] - probs[4]).abs() > 1e-3 || (probs[1] - probs[5]).abs() > 1e-3);
        }
    }
}

#[test]
fn two_threads_give_the_same_answer() {
    let mut one = OrtBackend::new(spec()).unwrap();
    let mut two = OrtBackend::new(OrtConfig {
        intra_threads: 2,
        ..spec()
    })
    .unwrap();
    one.wake().unwrap();
    two.wake().unwrap();
    let batch = inputs(8);
    let a = one.run(&batch).unwrap();
    let b = two.run(&batch).unwrap();
    assert_close(
        "probs",
        a.get("probs").unwrap().data(),
        &b.get("probs")
            .unwrap()
            .data()
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>(),
        1e-6,
    );
}

#[test]
fn a_model_that_differs_from_its_specification_is_rejected_at_wake() {
    let cases: Vec<(OrtConfig, &str)> = vec![
        (
            OrtConfig {
                inputs: vec![
                    IoSpec::f32("audio", &[-1, 64]).unwrap(),
                    IoSpec::f32("m", &[-1, 3]).unwrap(),
                ],
                ..spec()
            },
            "`audio`",
        ),
        (
            OrtConfig {
                inputs: vec![
                    IoSpec::f32("x", &[-1, 32]).unwrap(),
                    IoSpec::f32("m", &[-1, 3]).unwrap(),
                ],
                ..spec()
            },
            "input `x` has shape [-1, 64]",
        ),
        (
            OrtConfig {
                outputs: vec![IoSpec::f32("probs", &[-1, 4]).unwrap()],
                ..spec()
            },
            "output `hidden`",
        ),
        (
            OrtConfig {
                outputs: vec![
                    IoSpec::f32("probs", &[-1, 5]).unwrap(),
                    IoSpec::f32("hidden", &[-1, 16]).unwrap(),
                ],
                ..spec()
            },
            "output `probs`",
        ),
    ];
    for (config, needle) in cases {
        let mut backend = OrtBackend::new(config).unwrap();
        match backend.wake() {
            Err(e @ InferError::ModelMismatch { .. }) => {
                assert!(e.to_string().contains(needle), "{needle}: {e}")
            }
            other => panic!("{needle}: {other:?}"),
        }
        assert!(!backend.is_awake());
    }
}

#[test]
fn missing_and_corrupt_models_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(data("tiny_fusion.onnx")).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(
        &garbage,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();

    let mut missing = OrtBackend::new(OrtConfig {
        model_path: dir.path().join("nope.onnx"),
        ..spec()
    })
    .unwrap();
    assert!(matches!(missing.wake(), Err(InferError::ModelRead { .. })));

    for path in [truncated, garbage, empty] {
        let mut backend = OrtBackend::new(OrtConfig {
            model_path: path.clone(),
            ..spec()
        })
        .unwrap();
        match backend.wake() {
            Err(InferError::ModelLoad { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(!reason.is_empty());
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

#[test]
fn bad_input_is_rejected_and_the_session_keeps_working() {
    let mut backend = OrtBackend::new(spec()).unwrap();
    assert!(matches!(backend.run(&inputs(1)), Err(InferError::NotAwake)));
    backend.wake().unwrap();
    let wrong_cols = inputs(2).with("x", TensorF32::matrix(2, 63, vec![0.0; 126]).unwrap());
    let wrong_rows = inputs(2).with("m", TensorF32::matrix(3, 3, vec![0.0; 9]).unwrap());
    let missing = NamedTensors::new().with("x", TensorF32::matrix(1, 64, vec![0.0; 64]).unwrap());
    for bad in [wrong_cols, wrong_rows, missing] {
        assert!(matches!(backend.run(&bad), Err(InferError::BadInput(_))));
    }
    assert!(backend.run(&inputs(3)).is_ok());
}

#[test]
fn idle_release_then_wake_again_gives_the_same_outputs() {
    let backend = OrtBackend::new(spec()).unwrap();
    let mut runner = BurstRunner::new(
        backend,
        LifecycleConfig {
            idle_release_ms: 500,
        },
    );
    let t0 = Instant::now();
    assert_eq!(runner.status(), Status::Released);
    let first = runner.run_burst(&inputs(8), t0).unwrap();
    assert_eq!(runner.status(), Status::Loaded);
    assert!(!runner.tick(t0 + Duration::from_millis(499)));
    assert!(runner.tick(t0 + Duration::from_millis(500)));
    assert_eq!(runner.status(), Status::Released);
    assert!(!runner.accelerator().unwrap().is_awake());

    let again = runner
        .run_burst(&inputs(8), t0 + Duration::from_secs(10))
        .unwrap();
    assert_eq!(first, again);
    let c = runner.counters();
    assert_eq!((c.wakes, c.runs, c.rows, c.releases), (2, 2, 16, 1));
    assert!(c.wake_time >= c.last_wake && c.last_wake > Duration::ZERO);
}

#[test]
fn a_mismatched_model_makes_the_runner_unavailable() {
    let backend = OrtBackend::new(OrtConfig {
        outputs: vec![IoSpec::f32("logits", &[-1, 4]).unwrap()],
        ..spec()
    })
    .unwrap();
    let mut runner = BurstRunner::new(backend, LifecycleConfig::default());
    assert!(matches!(
        runner.run_burst(&inputs(1), Instant::now()),
        Err(InferError::ModelMismatch { .. })
    ));
    match runner.status() {
        Status::Unavailable(reason) => assert!(reason.contains("`logits`"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        runner.run_burst(&inputs(1), Instant::now()),
        Err(InferError::Unavailable(_))
    ));
}

#[test]
fn the_model_describes_its_own_inputs_and_outputs() {
    let (inputs, outputs) =
        OrtBackend::inspect_model(Some(&real_library()), &data("tiny_fusion.onnx")).unwrap();
    let cfg = spec();
    assert_eq!(inputs, cfg.inputs);
    assert_eq!(outputs, cfg.outputs);
}

#[test]
fn impossible_configurations_are_rejected() {
    for threads in [0, 5] {
        assert!(matches!(
            OrtBackend::new(OrtConfig {
                intra_threads: threads,
                ..spec()
            }),
            Err(InferError::Config(_))
        ));
    }
    assert!(matches!(
        OrtBackend::new(OrtConfig {
            outputs: vec![IoSpec::f32("x", &[-1, 4]).unwrap()],
            ..spec()
        }),
        Err(InferError::Config(_))
    ));
}
