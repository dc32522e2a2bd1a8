//! ONNX Runtime library failures are typed errors, not panics, and do not
//! stop the process from loading the right library afterwards.
//!
//! One test, in order, in its own process: `ort` loads one library per
//! process for good, so the failures must come before the success.

use std::path::{Path, PathBuf};
use std::process::Command;

use fusion::infer::{
    BurstRunner, InferError, IoSpec, LifecycleConfig, OrtBackend, OrtConfig, Status, library,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn config(library_path: &Path) -> OrtConfig {
    OrtConfig {
        library_path: Some(library_path.to_path_buf()),
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

/// Builds tests/data/fake_ort.c into a library reporting `version`.
fn fake_ort(dir: &Path, version: &str) -> PathBuf {
    let out = dir.join(format!("libfake-ort-{version}.so"));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(format!("-DFAKE_ORT_VERSION=\"{version}\""))
        .arg("-o")
        .arg(&out)
        .arg(data("fake_ort.c"))
        .status()
        .expect("running cc (the C compiler Rust links with)");
    assert!(status.success(), "cc failed building the fake library");
    out
}

fn libm() -> PathBuf {
    [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("libm.so.6 in a standard place")
}

#[test]
fn library_failures_are_typed_and_leave_the_process_usable() {
    let dir = tempfile::tempdir().unwrap();

    // Missing file.
    let missing = dir.path().join("missing/libonnxruntime.so");
    match OrtBackend::new(config(&missing)) {
        Err(InferError::LibraryNotFound { path, .. }) => assert_eq!(path, missing),
        other => panic!("missing library: {other:?}"),
    }

    // A file that is not a shared library.
    let text = dir.path().join("libonnxruntime.so");
    std::fs::write(&text, b"this is not an ELF file\n").unwrap();
    match OrtBackend::new(config(&text)) {
        Err(InferError::LibraryLoad { path, reason }) => {
            assert_eq!(path, text);
            assert!(!reason.is_empty());
        }
        other => panic!("text file: {other:?}"),
    }

    // A real shared library that is not ONNX Runtime.
    match OrtBackend::new(config(&libm())) {
        Err(e @ InferError::NotOnnxRuntime { .. }) => {
            assert!(e.to_string().contains("OrtGetApiBase"), "{e}")
        }
        other => panic!("libm: {other:?}"),
    }

    // ONNX Runtime of an older version than this build needs.
    let old = fake_ort(dir.path(), "1.20.0");
    match OrtBackend::new(config(&old)) {
        Err(InferError::LibraryVersion {
            found, expected, ..
        }) => {
            assert_eq!(found, "1.20.0");
            assert_eq!(expected, format!("1.{}", library::ORT_MIN_MINOR));
        }
        other => panic!("old version: {other:?}"),
    }

    // The node's fallback: a runner without a backend reports why.
    let err = OrtBackend::new(config(&old)).unwrap_err();
    let runner: BurstRunner<OrtBackend> =
        BurstRunner::from_result(Err(err), LifecycleConfig::default());
    match runner.status() {
        Status::Unavailable(reason) => assert!(reason.contains("1.20.0"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // None of that stops the real library from loading now.
    let real = library::resolve(None)
        .expect("ONNX Runtime is installed (scripts/install-onnxruntime) or ORT_DYLIB_PATH is set");
    let mut backend = OrtBackend::new(config(&real.path)).expect("the real library loads");
    assert!(
        backend.build_info().contains("ORT Build Info"),
        "{}",
        backend.build_info()
    );
    use fusion::infer::Accelerator;
    backend.wake().expect("the fixture loads");

    // And once loaded, another library cannot replace it in this process.
    match OrtBackend::new(config(&old)) {
        Err(InferError::LibraryConflict { loaded, requested }) => {
            assert_eq!(loaded, real.path);
            assert_eq!(requested, old);
        }
        other => panic!("second library: {other:?}"),
    }
}
