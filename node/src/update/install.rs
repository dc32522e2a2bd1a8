//! The install pipeline. An offered bundle is verified against the trust
//! state, then held until the power policy allows an install; a settings
//! patch is checked against the configuration and stored; a model is
//! written to the free slot, loaded, self-tested (vectors and latency) and
//! handed to the detection stage on trial. Only after its trial bursts is it
//! committed and its version recorded; any failure leaves the committed
//! model in place. The node never loads a model that did not pass
//! verification: a slot is only ever named in the state once it has.

use std::path::{Path, PathBuf};

use fusion::model::FusionModel;
use models::bundle::{
    Bundle, Expect, Kind, Metadata, ModelTarget, Refusal, SettingsPatch, TrustState, verify_bundle,
};
use power::{Decision, PowerStatus, Step};

use super::config::UpdateConfig;
use super::state::{InstallState, Outcome, SlotModel};
use super::trust;
use crate::config::Config;

/// This firmware's version, from the crate's.
pub fn firmware() -> [u16; 3] {
    let mut v = [0u16; 3];
    for (i, part) in env!("CARGO_PKG_VERSION").split('.').take(3).enumerate() {
        v[i] = part
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
    }
    v
}

/// What this node runs: the target a model bundle must fit.
pub fn expect() -> Expect {
    Expect {
        firmware: firmware(),
        model: ModelTarget {
            family: "fusion".into(),
            features: fusion::model::FEATURE_LAYOUT.into(),
            classes: fusion::classifier::MODEL_CLASSES
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
        },
    }
}

/// What became of an offer.
pub enum Offer {
    /// Refused, with the reason; the bundle is dropped.
    Refused(Outcome),
    /// Valid, but the power policy (or the temperature) says not now; the
    /// bundle is kept.
    Deferred(Outcome),
    /// A settings patch, installed: what applies now, and at every start.
    Settings(Outcome, Box<super::live::LiveSettings>),
    /// A model that passed its self-test, to run on trial.
    Trial {
        /// What to report.
        outcome: Outcome,
        /// The model, loaded.
        model: Box<FusionModel<fusion::infer::OrtBackend>>,
        /// Its metadata, to record at commit.
        meta: Box<Metadata>,
    },
}

impl Offer {
    /// The outcome to report.
    pub fn outcome(&self) -> &Outcome {
        match self {
            Offer::Refused(o) | Offer::Deferred(o) | Offer::Settings(o, _) => o,
            Offer::Trial { outcome, .. } => outcome,
        }
    }
}

/// The node's installer: its files, trust state and install state.
pub struct Installer {
    dir: PathBuf,
    cfg: Config,
    trust: Result<TrustState, String>,
    state: InstallState,
    build_s: u64,
    /// A trial that a restart interrupted and this start rolled back, not
    /// yet reported.
    restart_rollback: Option<Outcome>,
}

/// Seconds since the epoch at build time (the time floor never goes below).
pub const BUILD_UNIX_S: u64 = 1_793_000_000;

/// The update verifier's time floor, unix s: the latest of the node's
/// clock, the last verified metadata time, the build time and the earliest
/// time the technician's reference allows (set over the field link; a node
/// without network time whose clock reset would otherwise accept expired
/// metadata).
pub fn time_floor_s(trust: &TrustState, data_dir: &Path, now_ms: i64, build_s: u64) -> u64 {
    let clock_s = u64::try_from(now_ms.max(0) / 1000).unwrap_or(0);
    let floor = trust.time_floor(clock_s, build_s);
    crate::fieldlink::timeref::floor_s(data_dir).map_or(floor, |t| floor.max(t))
}

fn outcome(now_ms: i64, meta: Option<&Metadata>, result: &str, reason: String) -> Outcome {
    Outcome {
        t_ms: now_ms,
        kind: meta.map_or("unknown", |m| m.kind.as_str()).to_string(),
        name: meta.map(|m| m.name.clone()).unwrap_or_default(),
        version: meta.map_or(0, |m| m.version),
        result: result.to_string(),
        reason,
    }
}

/// Where `fieldnode update apply` leaves the refusals it makes
/// (`<data_dir>/update/refused/`, one TOML [`Outcome`] per file): the
/// command runs beside the node, which alone writes the install state, so
/// the node takes them into it and reports them
/// ([`Installer::take_left_refusals`]).
pub fn refused_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("update").join("refused")
}

/// Leaves a refusal made outside the node for it to record and report.
pub fn leave_refusal(data_dir: &Path, o: &Outcome) -> Result<PathBuf, String> {
    let dir = refused_dir(data_dir);
    uplink::store::durable::create_dir_durably(&dir).map_err(|e| e.to_string())?;
    let text = toml::to_string(o).map_err(|e| e.to_string())?;
    let path = dir.join(format!("{:020}-{}.toml", o.t_ms.max(0), std::process::id()));
    uplink::store::durable::replace_atomically(&path, text.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The refusals left by [`leave_refusal`], oldest first, with their files.
/// A file that does not read is logged and skipped (and removed by
/// [`Installer::take_left_refusals`]).
pub fn left_refusals(data_dir: &Path) -> Vec<(PathBuf, Option<Outcome>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(refused_dir(data_dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let o = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<Outcome>(&t).map_err(|e| e.to_string()));
            match o {
                Ok(o) => (p, Some(o)),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "a left refusal does not read");
                    (p, None)
                }
            }
        })
        .collect()
}

/// The outcome of a refusal of `bytes` (named by its metadata when its
/// header reads).
pub fn refusal_outcome(bytes: &[u8], r: &Refusal, now_ms: i64) -> Outcome {
    let meta = Bundle::parse_header(bytes).ok().map(|(b, _)| b.meta);
    outcome(
        now_ms,
        meta.as_ref(),
        "refused",
        format!("{}: {r}", r.code()),
    )
}

/// The temperatures an install is judged on; `None` where no sensor
/// answered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Temperatures {
    /// The enclosure's air (the BME280), °C.
    pub air_c: Option<f64>,
    /// The SoC (the board's thermal zone), °C.
    pub soc_c: Option<f64>,
}

impl Temperatures {
    /// Why an install must wait, if it must: the enclosure's air outside
    /// `min_temp_c..=max_temp_c` (flash and battery limits), or the SoC
    /// above `max_soc_temp_c`. Without an air reading the SoC stands in
    /// for the lower limit (it is never colder than the air around it).
    pub fn deny(&self, u: &UpdateConfig) -> Option<String> {
        if let Some(t) = self.air_c
            && !(u.min_temp_c..=u.max_temp_c).contains(&t)
        {
            return Some(format!(
                "enclosure at {t:.1} °C, outside {:.0}..{:.0} °C",
                u.min_temp_c, u.max_temp_c
            ));
        }
        if let Some(t) = self.soc_c {
            if t > u.max_soc_temp_c {
                return Some(format!(
                    "SoC at {t:.1} °C, above {:.0} °C",
                    u.max_soc_temp_c
                ));
            }
            if self.air_c.is_none() && t < u.min_temp_c {
                return Some(format!("SoC at {t:.1} °C, below {:.0} °C", u.min_temp_c));
            }
        }
        None
    }
}

impl Installer {
    /// Opens `<data_dir>/update`. A trust state that cannot be had (no root
    /// configured, a damaged file) leaves the installer refusing every
    /// bundle with that reason; the node runs on. A trial interrupted by a
    /// restart is rolled back.
    pub fn open(cfg: &Config, now_ms: i64) -> Installer {
        Installer::open_as(cfg, now_ms, true)
    }

    /// Opens the installer without changing any file: for the command-line
    /// tools, which may run beside the node. A trial in progress is left as
    /// it is; a missing trust state is made in memory only.
    pub fn open_read_only(cfg: &Config, now_ms: i64) -> Installer {
        Installer::open_as(cfg, now_ms, false)
    }

    fn open_as(cfg: &Config, now_ms: i64, node: bool) -> Installer {
        let dir = cfg.node.data_dir.join("update");
        let trust_path = dir.join("trust.bin");
        let state_path = dir.join("state.toml");
        let trust_missing = !trust_path.exists();
        let mut trust =
            trust::load(&trust_path, cfg.update.root.as_deref(), node).map_err(|e| e.to_string());
        if let Err(e) = &trust {
            tracing::info!(reason = %e, "updates are off");
        }
        let mut state = InstallState::load(&state_path).unwrap_or_else(|e| {
            tracing::error!(error = %e, "install state unreadable; running the configured model");
            InstallState::default()
        });
        if let Ok(t) = trust.as_mut() {
            if trust_missing && state_path.exists() {
                tracing::warn!(
                    path = %trust_path.display(),
                    model_active = state.active.as_ref().map_or(0, |a| a.version),
                    settings_version = state.settings_version,
                    "trust state missing while an install state exists; the rollback floor comes from the install state"
                );
            }
            // The rollback floor is the trust state's versions and what the
            // install state says is committed, whichever is higher.
            let raised = trust::raise_floor(t, &state.installed(&expect().model.family));
            for (kind, name, before, now) in &raised {
                tracing::warn!(kind = kind.as_str(), name = %name, trust_version = before, installed_version = now, "rollback floor raised to the installed version");
            }
            if node
                && !raised.is_empty()
                && let Err(e) = trust::save(&trust_path, t)
            {
                tracing::error!(error = %e, "cannot record the raised rollback floor");
            }
        }
        let mut restart_rollback = None;
        if node && let Some(t) = state.trial.take() {
            tracing::warn!(slot = %t.slot, version = t.version, "a model trial was interrupted by a restart; rolled back");
            state.last = Some(Outcome {
                t_ms: now_ms,
                kind: "model".into(),
                name: "fusion".into(),
                version: t.version,
                result: "rolled_back".into(),
                reason: "the trial was interrupted by a restart".into(),
            });
            if let Err(e) = state.save(&state_path) {
                tracing::error!(error = %e, "cannot record the rollback");
            }
            restart_rollback = state.last.clone();
        }
        Installer {
            dir,
            cfg: cfg.clone(),
            trust,
            state,
            build_s: BUILD_UNIX_S,
            restart_rollback,
        }
    }

    /// Bursts a model runs on trial.
    pub fn trial_bursts(&self) -> u32 {
        self.cfg.update.trial_bursts
    }

    /// The rollback of a trial that a restart interrupted, once.
    pub fn take_restart_rollback(&mut self) -> Option<Outcome> {
        self.restart_rollback.take()
    }

    /// The install state.
    pub fn state(&self) -> &InstallState {
        &self.state
    }

    /// The trust state, or why there is none.
    pub fn trust(&self) -> Result<&TrustState, &str> {
        self.trust.as_ref().map_err(|e| e.as_str())
    }

    /// The committed model's manifest, if an update installed one.
    pub fn active_manifest(&self) -> Option<PathBuf> {
        self.state
            .active
            .as_ref()
            .map(|a| self.dir.join("slots").join(&a.slot).join("manifest.toml"))
    }

    /// Replaces the configuration the installer patches and checks against
    /// (the technician changed the configuration file's live keys).
    pub fn set_base_config(&mut self, cfg: Config) {
        self.cfg = cfg;
    }

    /// The installed settings patch, if any.
    pub fn settings_patch(&self) -> Option<SettingsPatch> {
        let bytes = std::fs::read(self.dir.join("settings.bin")).ok()?;
        SettingsPatch::from_bytes(&bytes).ok()
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.toml")
    }

    fn record_last(&mut self, o: &Outcome) {
        self.state.last = Some(o.clone());
        if let Err(e) = self.state.save(&self.state_path()) {
            tracing::error!(error = %e, "cannot record the update result");
        }
    }

    /// Takes the refusals `fieldnode update apply` left
    /// ([`leave_refusal`]): each in turn becomes the last result in the
    /// install state, and its file is removed. Returns them, oldest first,
    /// to report.
    pub fn take_left_refusals(&mut self) -> Vec<Outcome> {
        let mut taken = Vec::new();
        for (path, o) in left_refusals(&self.cfg.node.data_dir) {
            if let Some(o) = o {
                self.record_last(&o);
                taken.push(o);
            }
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a left refusal");
            }
        }
        taken
    }

    /// Verifies a bundle without installing it (`fieldnode update apply`
    /// checks before it queues a file).
    pub fn check(&self, reader: impl std::io::Read, now_ms: i64) -> Result<Bundle, Refusal> {
        let trust = self
            .trust
            .as_ref()
            .map_err(|e| Refusal::Malformed(format!("updates are off: {e}")))?;
        let floor = time_floor_s(trust, &self.cfg.node.data_dir, now_ms, self.build_s);
        verify_bundle(
            trust,
            reader,
            &expect(),
            floor,
            self.cfg.update.max_bundle_bytes,
        )
    }

    /// Takes an offered bundle as far as it may go now.
    pub fn offer(
        &mut self,
        reader: impl std::io::Read,
        power: &PowerStatus,
        temps: Temperatures,
        now_ms: i64,
    ) -> Offer {
        let bundle = match self.check(reader, now_ms) {
            Ok(b) => b,
            Err(r) => {
                let o = outcome(now_ms, None, "refused", format!("{}: {r}", r.code()));
                self.record_last(&o);
                return Offer::Refused(o);
            }
        };
        let meta = &bundle.meta;
        if let Decision::Deny(why) = power.decide(Step::Install) {
            return Offer::Deferred(outcome(now_ms, Some(meta), "deferred", why));
        }
        if let Some(why) = temps.deny(&self.cfg.update) {
            return Offer::Deferred(outcome(now_ms, Some(meta), "deferred", why));
        }
        let result = match meta.kind {
            Kind::Settings => self.install_settings(&bundle, now_ms),
            Kind::Model => self.stage_model(&bundle, now_ms),
        };
        match result {
            Ok(offer) => {
                self.record_last(offer.outcome());
                offer
            }
            Err((result, reason)) => {
                let o = outcome(now_ms, Some(meta), result, reason);
                self.record_last(&o);
                Offer::Refused(o)
            }
        }
    }

    fn install_settings(
        &mut self,
        b: &Bundle,
        now_ms: i64,
    ) -> Result<Offer, (&'static str, String)> {
        let refused = |reason: String| ("refused", reason);
        let patch = SettingsPatch::from_bytes(&b.payload).map_err(|e| refused(e.to_string()))?;
        let mut patched = self.cfg.clone();
        apply_patch(&mut patched, &patch);
        let errors = patched.validate();
        if !errors.0.is_empty() {
            return Err(refused(format!("settings_invalid: {errors}")));
        }
        let io = |e: String| ("refused", format!("io: {e}"));
        uplink::store::durable::create_dir_durably(&self.dir).map_err(|e| io(e.to_string()))?;
        uplink::store::durable::replace_atomically(&self.dir.join("settings.bin"), &b.payload)
            .map_err(|e| io(e.to_string()))?;
        self.state.settings_version = b.meta.version;
        self.state.settings_name = Some(b.meta.name.clone());
        self.commit_trust(&b.meta).map_err(io)?;
        Ok(Offer::Settings(
            outcome(
                now_ms,
                Some(&b.meta),
                "installed",
                "applied: class thresholds, exclusions, power thresholds and cadences".into(),
            ),
            Box::new(super::live::LiveSettings::of(&patched, b.meta.version)),
        ))
    }

    fn stage_model(&mut self, b: &Bundle, now_ms: i64) -> Result<Offer, (&'static str, String)> {
        let started = std::time::Instant::now();
        let refused = |reason: String| ("refused", reason);
        let m = &b.meta;
        let text = m
            .manifest
            .as_deref()
            .ok_or_else(|| refused("model_invalid: the bundle carries no manifest".into()))?;
        let manifest = models::Manifest::from_toml(text)
            .map_err(|e| refused(format!("model_invalid: {e}")))?;
        let sha: String = m
            .payload_sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if manifest.sha256 != sha
            || manifest.size_bytes != m.payload_len
            || u64::from(manifest.version) != m.version
            || manifest.name != m.name
        {
            return Err(refused(
                "model_invalid: the manifest does not describe the signed payload (name, version, size or sha256)".into(),
            ));
        }
        let file = Path::new(&manifest.file);
        if file.components().count() != 1 || file.file_name().is_none() {
            return Err(refused(
                "model_invalid: the manifest's file is not a plain file name".into(),
            ));
        }
        let slot = self.state.free_slot();
        let slot_dir = self.dir.join("slots").join(slot);
        let io = |e: String| ("refused", format!("io: {e}"));
        uplink::store::durable::create_dir_durably(&slot_dir).map_err(|e| io(e.to_string()))?;
        uplink::store::durable::replace_atomically(&slot_dir.join(file), &b.payload)
            .map_err(|e| io(e.to_string()))?;
        let manifest_path = slot_dir.join("manifest.toml");
        uplink::store::durable::replace_atomically(&manifest_path, text.as_bytes())
            .map_err(|e| io(e.to_string()))?;
        let rolled_back = |reason: String| ("rolled_back", reason);
        let mut model = FusionModel::open(&self.cfg.fusion, &manifest_path)
            .map_err(|e| rolled_back(format!("model_invalid: {e}")))?;
        let report = model
            .self_test(&m.self_tests)
            .map_err(|e| rolled_back(format!("self_test: {e}")))?;
        let bound_us =
            ((f64::from(m.latency_p99_us) * self.cfg.update.latency_factor) as u64).max(50_000);
        if report.slowest_us > bound_us {
            return Err(rolled_back(format!(
                "latency: {} µs, more than the {bound_us} µs allowed",
                report.slowest_us
            )));
        }
        tracing::info!(
            slot,
            version = m.version,
            vectors = report.vectors,
            slowest_us = report.slowest_us,
            install_ms = started.elapsed().as_secs_f64() * 1e3,
            "model passed its self-test"
        );
        self.state.trial = Some(SlotModel {
            slot: slot.to_string(),
            version: m.version,
        });
        let o = outcome(
            now_ms,
            Some(m),
            "on_trial",
            format!(
                "self-test passed ({} vectors, slowest {} µs); {} trial bursts",
                report.vectors, report.slowest_us, self.cfg.update.trial_bursts
            ),
        );
        Ok(Offer::Trial {
            outcome: o,
            model: Box::new(model),
            meta: Box::new(m.clone()),
        })
    }

    fn commit_trust(&mut self, meta: &Metadata) -> Result<(), String> {
        let trust = self.trust.as_mut().map_err(|e| e.clone())?;
        trust.record(meta);
        trust::save(&self.dir.join("trust.bin"), trust).map_err(|e| e.to_string())
    }

    /// The model on trial passed: it becomes the committed one, and its
    /// version is recorded (from now on older bundles are rollbacks).
    ///
    /// The install state (naming the new slot) is made durable before the
    /// version is recorded: a power cut between the two leaves the new model
    /// committed (the next start takes its version into the rollback floor
    /// from the install state, and refuses its bundle, offered again, as not
    /// newer), never a recorded version without its model (which would
    /// refuse the bundle as a rollback and lose the update).
    pub fn commit(&mut self, meta: &Metadata, now_ms: i64) -> Outcome {
        if let Some(t) = self.state.trial.take() {
            self.state.active = Some(t);
        }
        if let Err(e) = self.state.save(&self.state_path()) {
            tracing::error!(error = %e, "cannot record the committed model");
        }
        let o = match self.commit_trust(meta) {
            Ok(()) => outcome(now_ms, Some(meta), "installed", "trial passed".into()),
            Err(e) => outcome(
                now_ms,
                Some(meta),
                "installed",
                format!("trial passed; the version could not be recorded: {e}"),
            ),
        };
        self.record_last(&o);
        o
    }

    /// The model on trial failed: the committed one stays.
    pub fn roll_back(&mut self, meta: &Metadata, reason: String, now_ms: i64) -> Outcome {
        self.state.trial = None;
        let o = outcome(now_ms, Some(meta), "rolled_back", reason);
        self.record_last(&o);
        o
    }
}

/// Applies a settings patch to a configuration.
pub fn apply_patch(cfg: &mut Config, p: &SettingsPatch) {
    let frac = |v: u16| f64::from(v) / 1000.0;
    for (class, t) in &p.thresholds {
        cfg.fusion
            .thresholds
            .insert(class.as_str().to_string(), frac(*t) as f32);
    }
    if let Some(ex) = &p.exclude {
        cfg.fusion.exclude = ex.iter().map(|c| c.as_str().to_string()).collect();
    }
    let pol = &mut cfg.power.policy;
    if let Some(v) = p.camera_interval_ms {
        pol.camera_interval_ms = u64::from(v);
    }
    if let Some(v) = p.camera_interval_saver_ms {
        pol.camera_interval_saver_ms = u64::from(v);
    }
    if let Some(v) = p.climate_interval_ms {
        pol.climate_interval_ms = u64::from(v);
    }
    if let Some(v) = p.climate_interval_critical_ms {
        pol.climate_interval_critical_ms = u64::from(v);
    }
    if let Some(v) = p.saver_below_soc {
        pol.saver_below_soc = frac(v);
    }
    if let Some(v) = p.critical_below_soc {
        pol.critical_below_soc = frac(v);
    }
    if let Some(v) = p.burst_min_soc {
        pol.burst_min_soc = frac(v);
    }
    if let Some(v) = p.uplink_min_soc {
        pol.uplink_min_soc = frac(v);
    }
    if let Some(v) = p.update_min_soc {
        pol.update_min_soc = frac(v);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn installs_wait_for_the_enclosure_and_the_soc_temperatures() {
        let u = UpdateConfig::default();
        let t = |air_c, soc_c| Temperatures { air_c, soc_c }.deny(&u);
        assert_eq!(t(None, None), None, "no sensor: no gate");
        assert_eq!(t(Some(25.0), Some(60.0)), None);
        assert_eq!(
            t(Some(71.0), Some(60.0)).as_deref(),
            Some("enclosure at 71.0 °C, outside -20..70 °C")
        );
        assert_eq!(
            t(Some(25.0), Some(76.0)).as_deref(),
            Some("SoC at 76.0 °C, above 75 °C")
        );
        // The SoC runs warmer than the air: it stands in for a cold limit
        // only without an air reading.
        assert_eq!(t(Some(0.0), Some(-25.0)), None);
        assert_eq!(
            t(None, Some(-25.0)).as_deref(),
            Some("SoC at -25.0 °C, below -20 °C")
        );
    }
    use super::*;
    use models::bundle::keys::generate;
    use models::bundle::{Role, Root, Target};

    fn now_s() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// A node's configuration trusting root keys 1, 2 and bundle keys 10,
    /// 11 (two of each), with its data directory in `dir`.
    fn config(dir: &Path) -> Config {
        let role = |keys: &[u8]| Role {
            keys: keys
                .iter()
                .map(|&n| generate([n; 32]).verifying_key().to_bytes())
                .collect(),
            threshold: 2,
        };
        let root = Root {
            version: 1,
            expires_s: now_s() + 86_400,
            root: role(&[1, 2]),
            bundles: role(&[10, 11]),
        };
        let path = dir.join("root.fnr");
        std::fs::write(
            &path,
            root.sign(&[&generate([1; 32]), &generate([2; 32])])
                .unwrap(),
        )
        .unwrap();
        let mut cfg = Config::default();
        cfg.node.data_dir = dir.join("data");
        cfg.update.root = Some(path);
        cfg
    }

    fn signed(meta: Metadata) -> Vec<u8> {
        let mut b = Bundle::new(meta, vec![1, 2, 3, 4]);
        b.sign(&generate([10; 32]));
        b.sign(&generate([11; 32]));
        b.to_bytes().unwrap()
    }

    /// A model bundle for this node (its payload is not a model: the trust
    /// decision does not load it).
    fn model(version: u64) -> Vec<u8> {
        let mut meta = Metadata::settings("fusion", version, now_s() - 60, now_s() + 3600, [0; 3]);
        meta.kind = Kind::Model;
        meta.target = Target {
            min_firmware: [0; 3],
            model: Some(expect().model),
        };
        signed(meta)
    }

    fn settings(name: &str, version: u64) -> Vec<u8> {
        signed(Metadata::settings(
            name,
            version,
            now_s() - 60,
            now_s() + 3600,
            [0; 3],
        ))
    }

    fn code(i: &Installer, bundle: &[u8]) -> &'static str {
        let now = now_s() as i64 * 1000;
        i.check(bundle, now).map_or_else(|r| r.code(), |_| "ok")
    }

    #[test]
    fn the_rollback_floor_survives_losing_the_trust_state() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let update = cfg.node.data_dir.join("update");
        std::fs::create_dir_all(&update).unwrap();
        // Model 6 committed and settings 3 installed, then trust.bin lost
        // (it was never written here: the same as deleted).
        let state = InstallState {
            active: Some(SlotModel {
                slot: "b".into(),
                version: 6,
            }),
            settings_version: 3,
            settings_name: Some("thresholds".into()),
            ..InstallState::default()
        };
        state.save(&update.join("state.toml")).unwrap();
        let now = now_s() as i64 * 1000;
        let i = Installer::open(&cfg, now);
        assert_eq!(code(&i, &model(5)), "rollback");
        assert_eq!(code(&i, &model(6)), "rollback");
        assert_eq!(code(&i, &model(7)), "ok");
        assert_eq!(code(&i, &settings("thresholds", 3)), "rollback");
        assert_eq!(code(&i, &settings("thresholds", 4)), "ok");
        // Another settings name has its own versions.
        assert_eq!(code(&i, &settings("other", 1)), "ok");
        // The rebuilt trust state holds the floor, so the read-only tools
        // (and the MQTT announce check, which reads trust.bin) see it too.
        let t = trust::load(&update.join("trust.bin"), None, false).unwrap();
        assert_eq!(t.installed(Kind::Model, "fusion"), 6);
        assert_eq!(t.installed(Kind::Settings, "thresholds"), 3);
        let ro = Installer::open_read_only(&cfg, now);
        assert_eq!(code(&ro, &model(6)), "rollback");
    }

    #[test]
    fn a_state_without_the_settings_name_floors_the_default_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let update = cfg.node.data_dir.join("update");
        std::fs::create_dir_all(&update).unwrap();
        std::fs::write(update.join("state.toml"), "settings_version = 2\n").unwrap();
        let i = Installer::open_read_only(&cfg, now_s() as i64 * 1000);
        assert_eq!(code(&i, &settings("settings", 2)), "rollback");
        assert_eq!(code(&i, &settings("settings", 3)), "ok");
        // Read-only: nothing written.
        assert!(!update.join("trust.bin").exists());
    }
}
