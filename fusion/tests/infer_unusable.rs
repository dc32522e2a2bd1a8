//! A library that passes `ort`'s version check but provides no API (ort
//! panics setting it up) is a typed error, and stays one: the process
//! cannot load another ONNX Runtime after it. Its own process, because this
//! test leaves the process's ONNX Runtime unusable on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

use fusion::infer::{InferError, IoSpec, OrtBackend, OrtConfig, library};

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

#[test]
fn a_library_without_the_api_is_unusable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let version = format!("1.{}.0", library::ORT_MIN_MINOR);
    let fake = dir.path().join("libfake-ort.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(format!("-DFAKE_ORT_VERSION=\"{version}\""))
        .arg("-o")
        .arg(&fake)
        .arg(data("fake_ort.c"))
        .status()
        .expect("running cc (the C compiler Rust links with)");
    assert!(status.success(), "cc failed building the fake library");

    match OrtBackend::new(config(&fake)) {
        Err(e @ InferError::LibraryUnusable { .. }) => {
            assert!(e.to_string().contains("C API version"), "{e}");
            assert!(e.is_permanent());
        }
        other => panic!("fake library: {other:?}"),
    }
    // Any later request, even for another file, gets the same reason.
    match OrtBackend::new(config(&fake)) {
        Err(InferError::LibraryUnusable { path, .. }) => assert_eq!(path, fake),
        other => panic!("second try: {other:?}"),
    }
    if let Ok(real) = library::resolve(None) {
        assert!(matches!(
            OrtBackend::new(config(&real.path)),
            Err(InferError::LibraryUnusable { .. })
        ));
    }
}
