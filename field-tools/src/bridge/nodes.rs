//! The nodes file: which node each modem (IMEI) belongs to. The SBD packing
//! leaves the node id out, so the bridge names the node from this table.
//!
//! ```toml
//! [nodes]
//! "300234010753370" = "node-07"
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// IMEI → node id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nodes {
    by_imei: HashMap<String, String>,
}

/// Why a nodes file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A key that is not a 15-digit IMEI.
    #[error("{path}: {imei:?} is not a 15-digit IMEI")]
    BadImei {
        /// The file.
        path: String,
        /// The key.
        imei: String,
    },
    /// A node id that cannot be a topic level.
    #[error("{path}: node id {node:?} (IMEI {imei}) is empty or contains '/', '+', '#' or NUL")]
    BadNode {
        /// The file.
        path: String,
        /// The IMEI.
        imei: String,
        /// The node id.
        node: String,
    },
    /// No node at all: every callback would be refused.
    #[error("{path}: [nodes] is empty")]
    Empty {
        /// The file.
        path: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    nodes: HashMap<String, String>,
}

impl Nodes {
    /// Parses the text of a nodes file; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Nodes, NodesError> {
        let file: File = toml::from_str(text).map_err(|e| NodesError::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if file.nodes.is_empty() {
            return Err(NodesError::Empty {
                path: path.to_string(),
            });
        }
        for (imei, node) in &file.nodes {
            if imei.len() != 15 || !imei.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NodesError::BadImei {
                    path: path.to_string(),
                    imei: imei.clone(),
                });
            }
            if node.is_empty() || node.contains(['/', '+', '#', '\0']) {
                return Err(NodesError::BadNode {
                    path: path.to_string(),
                    imei: imei.clone(),
                    node: node.clone(),
                });
            }
        }
        Ok(Nodes {
            by_imei: file.nodes,
        })
    }

    /// Reads and parses a nodes file.
    pub fn load(path: &Path) -> Result<Nodes, NodesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| NodesError::Read {
            path: shown.clone(),
            error,
        })?;
        Nodes::parse(&text, &shown)
    }

    /// The node of a modem, if it is known.
    pub fn node_of(&self, imei: &str) -> Option<&str> {
        self.by_imei.get(imei).map(String::as_str)
    }

    /// Number of modems known.
    pub fn len(&self) -> usize {
        self.by_imei.len()
    }

    /// Whether no modem is known.
    pub fn is_empty(&self) -> bool {
        self.by_imei.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_file_maps_imeis() {
        let n = Nodes::parse(
            "[nodes]\n\"300234010753370\" = \"node-07\"\n\"300234010753371\" = \"node-08\"\n",
            "nodes.toml",
        )
        .expect("valid");
        assert_eq!(n.node_of("300234010753370"), Some("node-07"));
        assert_eq!(n.node_of("300234010753372"), None);
        assert_eq!(n.len(), 2);
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let bad = |text: &str| Nodes::parse(text, "n.toml").expect_err(text);
        assert!(matches!(
            bad("[nodes]\n\"1234\" = \"a\"\n"),
            NodesError::BadImei { .. }
        ));
        assert!(matches!(
            bad("[nodes]\n\"300234010753370\" = \"a/b\"\n"),
            NodesError::BadNode { .. }
        ));
        assert!(matches!(bad("[nodes]\n"), NodesError::Empty { .. }));
        assert!(matches!(bad("nodes = 3\n"), NodesError::Parse { .. }));
        assert!(matches!(bad("[nodse]\n"), NodesError::Parse { .. }));
    }
}
