//! The signed-update part of the status record: the versions installed,
//! the model on trial and the last update result with its reason. Texts
//! are capped ([`ShortText`]) so that a status record with every field
//! present stays small enough for one satellite message with room to spare.

use serde::{Deserialize, Serialize};

/// Why a status record was made. Wire order is fixed: only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatusCause {
    /// The periodic report (`[uplink] status_interval_ms`).
    #[default]
    Periodic,
    /// Asked for by a `send_status` command.
    Requested,
    /// Made when an update was installed, put on trial, rolled back,
    /// refused or first deferred: [`UpdateStatus::last`] is that result.
    /// Stored at priority high (at least).
    UpdateResult,
}

/// The kind of bundle an update result is about. Wire order is fixed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BundleKindCode {
    /// A bundle whose metadata could not be read (refused as malformed,
    /// too large, or by a trust state that is not there).
    #[default]
    Unknown,
    /// A fusion model.
    Model,
    /// A settings patch.
    Settings,
}

impl BundleKindCode {
    /// From the stable name (`model`, `settings`); anything else is unknown.
    pub fn parse(name: &str) -> BundleKindCode {
        match name {
            "model" => BundleKindCode::Model,
            "settings" => BundleKindCode::Settings,
            _ => BundleKindCode::Unknown,
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKindCode::Unknown => "unknown",
            BundleKindCode::Model => "model",
            BundleKindCode::Settings => "settings",
        }
    }
}

/// What became of a bundle. Wire order is fixed: only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// Installed: a settings patch in force, or a model committed after
    /// its trial.
    #[default]
    Installed,
    /// A model passed its self-test and runs on trial.
    OnTrial,
    /// A model failed its self-test, latency bound or trial; the previous
    /// one runs.
    RolledBack,
    /// Refused; the bundle was dropped.
    Refused,
    /// Valid but not installed now (power or temperature); kept and offered
    /// again.
    Deferred,
}

impl UpdateOutcome {
    /// From the stable name (`installed`, `on_trial`, `rolled_back`,
    /// `refused`, `deferred`).
    pub fn parse(name: &str) -> Option<UpdateOutcome> {
        [
            UpdateOutcome::Installed,
            UpdateOutcome::OnTrial,
            UpdateOutcome::RolledBack,
            UpdateOutcome::Refused,
            UpdateOutcome::Deferred,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOutcome::Installed => "installed",
            UpdateOutcome::OnTrial => "on_trial",
            UpdateOutcome::RolledBack => "rolled_back",
            UpdateOutcome::Refused => "refused",
            UpdateOutcome::Deferred => "deferred",
        }
    }
}

/// A string of at most `N` bytes. [`ShortText::new`] cuts a longer text at
/// a character boundary; a decoder refuses a longer one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(try_from = "String", into = "String")]
pub struct ShortText<const N: usize>(String);

impl<const N: usize> ShortText<N> {
    /// `text`, cut to at most `N` bytes at a character boundary.
    pub fn new(text: &str) -> ShortText<N> {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        ShortText(text[..end].to_string())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> TryFrom<String> for ShortText<N> {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > N {
            return Err(format!("text of {} bytes, at most {N} allowed", s.len()));
        }
        Ok(ShortText(s))
    }
}

impl<const N: usize> From<ShortText<N>> for String {
    fn from(t: ShortText<N>) -> String {
        t.0
    }
}

impl<const N: usize> std::fmt::Display for ShortText<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest bundle name carried, bytes.
pub const NAME_MAX: usize = 24;
/// Longest reason carried, bytes (the reason's code comes first, so a cut
/// keeps it).
pub const REASON_MAX: usize = 64;

/// One update result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UpdateResult {
    /// The bundle's kind.
    pub kind: BundleKindCode,
    /// The bundle's name (empty when unknown).
    pub name: ShortText<NAME_MAX>,
    /// The bundle's version (0 when unknown).
    pub version: u64,
    /// What became of it.
    pub result: UpdateOutcome,
    /// Why: a refusal's code and message, the power policy's reason.
    pub reason: ShortText<REASON_MAX>,
}

/// What the node has installed by signed updates, and the last result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UpdateStatus {
    /// Bundle version of the committed model; 0 = the configured
    /// `[fusion] model` (no model installed by an update).
    pub model_active: u64,
    /// Bundle version of the model on trial, if one is.
    pub model_staged: Option<u64>,
    /// Version of the installed settings bundle; 0 = none.
    pub settings: u64,
    /// The last result on record.
    pub last: Option<UpdateResult>,
}

impl UpdateStatus {
    /// True when nothing is installed and no result is on record.
    pub fn is_empty(&self) -> bool {
        *self == UpdateStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_cuts_at_a_character_boundary_and_decoders_refuse_longer() {
        let t = ShortText::<5>::new("ab°cdef");
        assert_eq!(t.as_str(), "ab°c");
        let t = ShortText::<3>::new("ab°");
        assert_eq!(t.as_str(), "ab");
        assert_eq!(ShortText::<8>::new("short").as_str(), "short");
        let long = postcard::to_allocvec("123456").unwrap();
        assert!(postcard::from_bytes::<ShortText<5>>(&long).is_err());
        let ok = postcard::to_allocvec("12345").unwrap();
        assert_eq!(
            postcard::from_bytes::<ShortText<5>>(&ok).unwrap().as_str(),
            "12345"
        );
    }

    #[test]
    fn names_round_trip() {
        for o in [
            UpdateOutcome::Installed,
            UpdateOutcome::OnTrial,
            UpdateOutcome::RolledBack,
            UpdateOutcome::Refused,
            UpdateOutcome::Deferred,
        ] {
            assert_eq!(UpdateOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(UpdateOutcome::parse("committed"), None);
        for k in [BundleKindCode::Model, BundleKindCode::Settings] {
            assert_eq!(BundleKindCode::parse(k.as_str()), k);
        }
        assert_eq!(BundleKindCode::parse("firmware"), BundleKindCode::Unknown);
    }
}
