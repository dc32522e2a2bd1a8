//! The detector's output.

use messages::{EventClass, KeyFeatures, ModalityScores};

/// One detected event, before the node gives it an id and stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Start, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// End, milliseconds since the Unix epoch (UTC); `>= start_ms`: where
    /// what the triggers saw ended (a heat rise at its highest reading).
    pub end_ms: i64,
    /// End of the span the event's evidence covers, `>= end_ms`: the
    /// triggers' activations until they closed (a heat rise closes up to a
    /// rate window after its highest reading). The model's features are
    /// taken over `start_ms..span_end_ms`.
    pub span_end_ms: i64,
    /// The class where the triggers can tell, else [`EventClass::Unknown`].
    pub class: EventClass,
    /// Confidence in `class`, 0..=1.
    pub confidence: f32,
    /// Per-modality trigger scores (`None` for a modality that was absent).
    pub scores: ModalityScores,
    /// Key features for the event record.
    pub features: KeyFeatures,
    /// The enclosure warmed over the event after the view had brightened
    /// (`climate.sun_brightening`): the sun's heat, not the event's. It is
    /// not the event's context, and the model is not shown the climate.
    pub heat_from_sun: bool,
}
