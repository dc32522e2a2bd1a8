//! The detector's output.

use messages::{EventClass, KeyFeatures, ModalityScores};

/// One detected event, before the node gives it an id and stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Start, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// End, milliseconds since the Unix epoch (UTC); `>= start_ms`.
    pub end_ms: i64,
    /// The class where the triggers can tell, else [`EventClass::Unknown`].
    pub class: EventClass,
    /// Confidence in `class`, 0..=1.
    pub confidence: f32,
    /// Per-modality trigger scores (`None` for a modality that was absent).
    pub scores: ModalityScores,
    /// Key features for the event record.
    pub features: KeyFeatures,
}
