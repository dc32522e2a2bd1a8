//! Where the ONNX Runtime shared library is found.
//!
//! Order: the configured path, then the `ORT_DYLIB_PATH` environment
//! variable, then the place `scripts/install-onnxruntime` installs to
//! (`$HOME/.local/lib/fieldnode/onnxruntime/<version>/libonnxruntime.so`).
//! The first one that is *set* is used; a configured path or variable that
//! names a missing file is an error, not a reason to look elsewhere, so a
//! typo in the configuration never silently picks another library.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::InferError;

/// The ONNX Runtime release that `scripts/install-onnxruntime` installs, and
/// that the pinned `ort` (2.0.0-rc.15, C API 31) was made for.
pub const ORT_VERSION: &str = "1.31.1";

/// The oldest ONNX Runtime minor version this build accepts (`ort`'s API version).
pub const ORT_MIN_MINOR: u32 = ort::MINOR_VERSION;

/// The environment variable that names the library (the same one `ort` reads).
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// Which setting chose the library path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibrarySource {
    /// The node's configuration.
    Config,
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// The install location of `scripts/install-onnxruntime`.
    Installed,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LibrarySource::Config => "the configuration",
            LibrarySource::Env => ENV_VAR,
            LibrarySource::Installed => "the install location of scripts/install-onnxruntime",
        })
    }
}

/// A library path and the setting it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryLocation {
    /// The library file.
    pub path: PathBuf,
    /// Which setting named it.
    pub source: LibrarySource,
}

/// The path `scripts/install-onnxruntime` installs the library to, under `home`.
pub fn installed_path(home: &Path) -> PathBuf {
    home.join(".local/lib/fieldnode/onnxruntime")
        .join(ORT_VERSION)
        .join("libonnxruntime.so")
}

/// Picks the library from explicit values (testable without touching the
/// process environment) and checks that the file exists.
pub fn resolve_with(
    configured: Option<&Path>,
    env: Option<OsString>,
    home: Option<OsString>,
) -> Result<LibraryLocation, InferError> {
    let location = if let Some(path) = configured {
        LibraryLocation {
            path: path.to_path_buf(),
            source: LibrarySource::Config,
        }
    } else if let Some(path) = env.filter(|v| !v.is_empty()) {
        LibraryLocation {
            path: PathBuf::from(path),
            source: LibrarySource::Env,
        }
    } else if let Some(home) = home.filter(|v| !v.is_empty()) {
        LibraryLocation {
            path: installed_path(Path::new(&home)),
            source: LibrarySource::Installed,
        }
    } else {
        return Err(InferError::NoLibraryLocation);
    };
    if !location.path.is_file() {
        return Err(InferError::LibraryNotFound {
            path: location.path,
            from: location.source,
        });
    }
    Ok(location)
}

/// Picks the library from the configured path, `ORT_DYLIB_PATH` and `HOME`.
pub fn resolve(configured: Option<&Path>) -> Result<LibraryLocation, InferError> {
    resolve_with(
        configured,
        std::env::var_os(ENV_VAR),
        std::env::var_os("HOME"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_config_then_env_then_installed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.so");
        let b = dir.path().join("b.so");
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        let installed = installed_path(dir.path());
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::write(&installed, b"x").unwrap();
        let home = Some(dir.path().as_os_str().to_owned());

        let got = resolve_with(Some(&a), Some(b.clone().into()), home.clone()).unwrap();
        assert_eq!((got.path, got.source), (a.clone(), LibrarySource::Config));
        let got = resolve_with(None, Some(b.clone().into()), home.clone()).unwrap();
        assert_eq!((got.path, got.source), (b.clone(), LibrarySource::Env));
        let got = resolve_with(None, Some(OsString::new()), home.clone()).unwrap();
        assert_eq!(
            (got.path, got.source),
            (installed, LibrarySource::Installed)
        );
    }

    #[test]
    fn a_set_but_missing_path_is_an_error_not_a_fallthrough() {
        let dir = tempfile::tempdir().unwrap();
        let installed = installed_path(dir.path());
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        std::fs::write(&installed, b"x").unwrap();
        let home = Some(dir.path().as_os_str().to_owned());
        let missing = dir.path().join("nope.so");

        match resolve_with(Some(&missing), None, home.clone()) {
            Err(InferError::LibraryNotFound { path, from }) => {
                assert_eq!(path, missing);
                assert_eq!(from, LibrarySource::Config);
            }
            other => panic!("{other:?}"),
        }
        match resolve_with(None, Some(missing.clone().into()), home) {
            Err(InferError::LibraryNotFound { from, .. }) => assert_eq!(from, LibrarySource::Env),
            other => panic!("{other:?}"),
        }
        match resolve_with(None, None, Some(OsString::from("/nonexistent-home"))) {
            Err(InferError::LibraryNotFound { from, .. }) => {
                assert_eq!(from, LibrarySource::Installed)
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve_with(None, None, None),
            Err(InferError::NoLibraryLocation)
        ));
    }

    #[test]
    fn the_installed_version_is_one_ort_accepts() {
        let minor: u32 = ORT_VERSION.split('.').nth(1).unwrap().parse().unwrap();
        assert_eq!(minor, ORT_MIN_MINOR);
    }
}
