//! The JSON view of an [`EventRecord`], in physical units. Its field names are
//! stable and documented in `docs/wire-format.md`; add fields, never rename.

use serde::{Deserialize, Serialize};

use crate::{EventClass, EventRecord};

/// An event in physical units, as printed by `field-tools events` and sent
/// over MQTT when the configuration asks for JSON.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EventJson {
    /// Event id (monotonic per node).
    pub id: u64,
    /// Node identifier.
    pub node_id: String,
    /// Start, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// End, milliseconds since the Unix epoch (UTC).
    pub end_ms: i64,
    /// Class name (`wildlife`, `machinery_anomaly`, `human_activity`, `background`, `unknown`).
    pub class: String,
    /// Confidence, 0..1.
    pub confidence: f32,
    /// Audio score 0..1, absent when the microphone was absent.
    pub score_audio: Option<f32>,
    /// Camera score 0..1, absent when the camera was absent.
    pub score_camera: Option<f32>,
    /// Climate score 0..1, absent when the climate sensor was absent.
    pub score_climate: Option<f32>,
    /// Peak audio level above the noise floor, dB.
    pub audio_snr_db: Option<f32>,
    /// Dominant audio frequency, Hz.
    pub audio_peak_hz: Option<u16>,
    /// Largest share of the frame in motion, 0..1.
    pub motion_area: Option<f32>,
    /// Horizontal motion centroid, 0 (left) .. 1 (right).
    pub motion_x: Option<f32>,
    /// Vertical motion centroid, 0 (top) .. 1 (bottom).
    pub motion_y: Option<f32>,
    /// Temperature change across the event, °C.
    pub temp_delta_c: Option<f32>,
    /// Mean temperature during the event, °C.
    pub temp_c: Option<f32>,
    /// Detector version: 0 = triggers only, otherwise the fusion model version.
    pub model_version: u32,
    /// Where the time came from (`synced`, `plausible`, `field_link`,
    /// `iridium`, `gnss`, `untrusted`, `scene`, `unknown`).
    #[serde(default = "unknown_source")]
    pub time_source: String,
    /// How far the time may be off, ms, where known.
    #[serde(default)]
    pub time_uncertainty_ms: Option<u32>,
    /// Stamped while the time was untrusted, then corrected.
    #[serde(default)]
    pub time_restamped: bool,
    /// For an event stamped while the time was untrusted: the boot that
    /// stored it (the first 16 hexadecimal digits of the kernel's boot id).
    #[serde(default)]
    pub time_boot: Option<String>,
    /// With `time_boot`: the event's start on that boot's monotonic clock
    /// (time since the boot), ms.
    #[serde(default)]
    pub time_mono_ms: Option<u64>,
}

fn unknown_source() -> String {
    crate::TimeSource::Unknown.as_str().into()
}

impl From<&EventRecord> for EventJson {
    fn from(r: &EventRecord) -> Self {
        let f = &r.features;
        EventJson {
            id: r.id,
            node_id: r.node_id.clone(),
            start_ms: r.start_ms,
            end_ms: r.end_ms(),
            class: r.class.as_str().to_string(),
            confidence: r.confidence.fraction(),
            score_audio: r.scores.audio.map(|p| p.fraction()),
            score_camera: r.scores.camera.map(|p| p.fraction()),
            score_climate: r.scores.climate.map(|p| p.fraction()),
            audio_snr_db: f.audio_snr_db10.map(|v| f32::from(v) / 10.0),
            audio_peak_hz: f.audio_peak_hz,
            motion_area: f.motion_area.map(|p| p.fraction()),
            motion_x: f.motion_centroid.map(|(x, _)| f32::from(x) / 255.0),
            motion_y: f.motion_centroid.map(|(_, y)| f32::from(y) / 255.0),
            temp_delta_c: f.temp_delta_c100.map(|v| f32::from(v) / 100.0),
            temp_c: f.temp_c100.map(|v| f32::from(v) / 100.0),
            model_version: r.model.0,
            time_source: r.time.source.as_str().into(),
            time_uncertainty_ms: r.time.uncertainty_ms,
            time_restamped: r.time.restamped,
            time_boot: r.mono.map(|m| m.boot_hex()),
            time_mono_ms: r.mono.map(|m| m.offset_ms),
        }
    }
}

impl EventJson {
    /// The class, if its name is known to this build.
    pub fn event_class(&self) -> Option<EventClass> {
        EventClass::parse(&self.class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyFeatures, ModalityScores, ModelVersion, Permille};

    #[test]
    fn field_names_are_stable() {
        let r = EventRecord {
            id: 7,
            node_id: "n1".into(),
            start_ms: 1000,
            duration_ms: 500,
            class: EventClass::HumanActivity,
            confidence: Permille(500),
            scores: ModalityScores::default(),
            features: KeyFeatures {
                temp_delta_c100: Some(-150),
                ..KeyFeatures::default()
            },
            model: ModelVersion(0),
            time: Default::default(),
            mono: Some(crate::MonoRef {
                boot: 0x0123_4567_89ab_cdef,
                offset_ms: 93_000,
            }),
        };
        let v = serde_json::to_value(EventJson::from(&r)).unwrap();
        assert_eq!(v["end_ms"], 1500);
        assert_eq!(v["class"], "human_activity");
        assert_eq!(v["temp_delta_c"], -1.5);
        assert!(v["score_audio"].is_null());
        assert_eq!(v["time_boot"], "0123456789abcdef");
        assert_eq!(v["time_mono_ms"], 93_000);
        let mut names: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        names.sort();
        let expected = [
            "audio_peak_hz",
            "audio_snr_db",
            "class",
            "confidence",
            "end_ms",
            "id",
            "model_version",
            "motion_area",
            "motion_x",
            "motion_y",
            "node_id",
            "score_audio",
            "score_camera",
            "score_climate",
            "start_ms",
            "temp_c",
            "temp_delta_c",
            "time_boot",
            "time_mono_ms",
            "time_restamped",
            "time_source",
            "time_uncertainty_ms",
        ];
        assert_eq!(names, expected);
    }
}
