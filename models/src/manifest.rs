//! The model manifest: what the node checks a model against before loading it.

use serde::{Deserialize, Serialize};

/// A tensor's name, element type and shape (`-1` for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Name in the ONNX graph.
    pub name: String,
    /// Element type, e.g. `float32`.
    pub dtype: String,
    /// Dimensions; `-1` is dynamic (the batch).
    pub shape: Vec<i64>,
}

/// A model's manifest (`manifest.toml` beside the model file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Model name.
    pub name: String,
    /// Monotonic version; written into event records. 0 is reserved for "triggers only".
    pub version: u32,
    /// Model file name, relative to the manifest.
    pub file: String,
    /// SHA-256 of the model file, lower-case hex.
    pub sha256: String,
    /// Length of the model file, bytes.
    pub size_bytes: u64,
    /// Quantization scheme, e.g. `MatMulNBits-4bit-block32`.
    pub quantization: String,
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
    /// Output classes, in output order.
    pub classes: Vec<String>,
    /// The feature layout the model was trained on (the node refuses a
    /// model whose layout it does not compute).
    #[serde(default)]
    pub features: Option<String>,
    /// Latency measured when the model was made.
    #[serde(default)]
    pub latency: Option<Latency>,
}

/// Inference latency measured on the machine that made the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Where it was measured (CPU, threads).
    pub measured_on: String,
    /// Session creation (waking the accelerator), ms.
    pub session_create_ms: f64,
    /// One burst of batch 1, median and 99th percentile, ms.
    pub batch1_p50_ms: f64,
    /// See `batch1_p50_ms`.
    pub batch1_p99_ms: f64,
    /// One burst of batch 8, median, ms.
    pub batch8_p50_ms: f64,
    /// See `batch8_p50_ms`.
    pub batch8_p99_ms: f64,
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not valid TOML or not the manifest's shape.
    #[error("manifest does not parse: {0}")]
    Parse(String),
    /// A field has an impossible value.
    #[error("manifest field `{field}`: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Why a model file does not match its manifest.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file cannot be read.
    #[error("model file {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its length differs from `size_bytes`.
    #[error("model file {}: {found} bytes, the manifest says {expected}", path.display())]
    Size {
        /// The file.
        path: std::path::PathBuf,
        /// From the manifest.
        expected: u64,
        /// On disk.
        found: u64,
    },
    /// Its SHA-256 differs from `sha256`.
    #[error("model file {}: sha256 {found}, the manifest says {expected}", path.display())]
    Hash {
        /// The file.
        path: std::path::PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        found: String,
    },
}

impl Manifest {
    /// Reads the model file beside the manifest at `manifest_path`, reading
    /// at most `size_bytes` + 1 bytes, and checks its length and SHA-256.
    /// Returns the model's path.
    pub fn verify_model(
        &self,
        manifest_path: &std::path::Path,
    ) -> Result<std::path::PathBuf, VerifyError> {
        use sha2::Digest;
        use std::io::Read;
        let path = manifest_path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&self.file);
        let io = |source| VerifyError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(self.size_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 != self.size_bytes {
            return Err(VerifyError::Size {
                path,
                expected: self.size_bytes,
                found: bytes.len() as u64,
            });
        }
        let found: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if found != self.sha256 {
            return Err(VerifyError::Hash {
                path,
                expected: self.sha256.clone(),
                found,
            });
        }
        Ok(path)
    }

    /// Parses and checks a manifest.
    pub fn from_toml(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Parse(e.message().to_string()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let bad = |field, problem: &str| {
            Err(ManifestError::Invalid {
                field,
                problem: problem.to_string(),
            })
        };
        if self.version == 0 {
            return bad("version", "0 is reserved for the trigger-only detector");
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return bad("sha256", "must be 64 lower-case hex digits");
        }
        if self.file.is_empty() || self.file.contains('/') || self.file.contains("..") {
            return bad("file", "must be a plain file name beside the manifest");
        }
        if self.size_bytes == 0 {
            return bad("size_bytes", "must be positive");
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return bad("inputs", "a model needs at least one input and one output");
        }
        for t in self.inputs.iter().chain(&self.outputs) {
            if t.name.is_empty() || t.shape.iter().any(|&d| d == 0 || d < -1) {
                return bad(
                    "inputs",
                    "tensor names must be non-empty and dimensions positive or -1",
                );
            }
        }
        if self.classes.is_empty() {
            return bad("classes", "must list the output classes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "fusion"
        version = 3
        file = "fusion-int4.onnx"
        sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        size_bytes = 123456
        quantization = "MatMulNBits-4bit-block32"
        classes = ["wildlife", "machinery_anomaly", "human_activity", "background"]
        [[inputs]]
        name = "audio"
        dtype = "float32"
        shape = [-1, 64, 32]
        [[outputs]]
        name = "logits"
        dtype = "float32"
        shape = [-1, 4]
    "#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::from_toml(GOOD).unwrap();
        assert_eq!(m.version, 3);
        assert_eq!(m.inputs[0].shape, vec![-1, 64, 32]);
    }

    #[test]
    fn a_model_file_is_checked_against_length_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("m.toml");
        // sha256("test")
        let m = Manifest::from_toml(
            &GOOD
                .replace("fusion-int4.onnx", "model.onnx")
                .replace("size_bytes = 123456", "size_bytes = 4"),
        )
        .unwrap();
        assert!(matches!(
            m.verify_model(&manifest_path),
            Err(VerifyError::Io { .. })
        ));
        std::fs::write(dir.path().join("model.onnx"), b"test").unwrap();
        assert_eq!(
            m.verify_model(&manifest_path).unwrap(),
            dir.path().join("model.onnx")
        );
        std::fs::write(dir.path().join("model.onnx"), b"tesT").unwrap();
        assert!(matches!(
            m.verify_model(&manifest_path),
            Err(VerifyError::Hash { .. })
        ));
        std::fs::write(dir.path().join("model.onnx"), b"test!").unwrap();
        assert!(matches!(
            m.verify_model(&manifest_path),
            Err(VerifyError::Size { found: 5, .. })
        ));
    }

    #[test]
    fn rejects_bad_fields() {
        let cases = [
            (GOOD.replace("version = 3", "version = 0"), "version"),
            (GOOD.replace("9f86d0", "XYZ"), "sha256"),
            (GOOD.replace("fusion-int4.onnx", "../etc/passwd"), "file"),
            (GOOD.replace("[-1, 4]", "[-1, 0]"), "inputs"),
        ];
        for (text, field) in cases {
            match Manifest::from_toml(&text) {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(matches!(
            Manifest::from_toml("name = 1"),
            Err(ManifestError::Parse(_))
        ));
        assert!(matches!(
            Manifest::from_toml(&format!("{GOOD}\nextra = 1")),
            Err(ManifestError::Parse(_))
        ));
    }
}
