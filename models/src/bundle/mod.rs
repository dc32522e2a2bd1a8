//! Signed bundles: how a model or a settings patch reaches a node, and how
//! the node decides whether to take it.
//!
//! - [`keys`]: Ed25519 keys, their ids and their text files;
//! - [`envelope`]: the signed envelope (magic, body, signatures);
//! - [`root`]: the trust root and its rotation;
//! - [`meta`]: a bundle's signed metadata and the bundle file;
//! - [`settings`]: the settings patch;
//! - [`verify`]: the trust decision and the state it depends on.

pub mod envelope;
pub mod keys;
pub mod meta;
pub mod root;
pub mod settings;
pub mod verify;

pub use meta::{Bundle, BundleError, Kind, Metadata, ModelTarget, SelfTest, Target};
pub use root::{Role, Root, RootError, SignedRoot};
pub use settings::{PatchError, SettingsPatch};
pub use verify::{Expect, Refusal, TrustState, check_payload, read_capped, verify_bundle};
