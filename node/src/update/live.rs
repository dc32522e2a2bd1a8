//! Settings that take effect without a restart. When a settings bundle is
//! installed, the update task publishes the configuration's `[fusion]`
//! class thresholds and exclusions and the `[power.policy]` thresholds and
//! cadences as they are with the patch over the configuration; the detect
//! task applies the classes before its next burst, the power task the
//! policy at its next reading (the camera and climate tasks follow the
//! cadence that reading allows). Everything a settings patch can change
//! applies this way; the next start applies the same patch again.
//!
//! The same keys change live when a technician replaces the configuration
//! file over the field link ([`ConfigInForce`]): the new file, with the
//! installed settings patch over it, is published the same way.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use fusion::FusionConfig;

use crate::config::Config;

/// The settings that apply while the node runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    /// The installed settings bundle's version.
    pub version: u64,
    /// Class thresholds and exclusions (`[fusion]`).
    pub fusion: FusionConfig,
    /// Power thresholds and cadences (`[power.policy]`).
    pub policy: power::PolicyConfig,
}

impl LiveSettings {
    /// The live part of a (patched) configuration.
    pub fn of(cfg: &Config, version: u64) -> LiveSettings {
        LiveSettings {
            version,
            fusion: cfg.fusion.clone(),
            policy: cfg.power.policy.clone(),
        }
    }
}

/// The newest installed settings, `None` until one is installed while the
/// node runs.
pub type Settings = Option<Arc<LiveSettings>>;

/// A channel for live settings: the update task sends, the detect and power
/// tasks receive.
pub fn channel() -> (watch::Sender<Settings>, watch::Receiver<Settings>) {
    watch::channel(None)
}

/// The settings sent since `rx` last looked, if any.
pub fn changed(rx: &mut watch::Receiver<Settings>) -> Option<Arc<LiveSettings>> {
    if !rx.has_changed().unwrap_or(false) {
        return None;
    }
    rx.borrow_and_update().clone()
}

/// Whether a changed configuration key (a dotted path, as the field link
/// names it) takes effect while the node runs: the `[fusion]` class
/// thresholds and exclusions and everything under `[power.policy]`.
pub fn key_is_live(key: &str) -> bool {
    key == "fusion.thresholds"
        || key.starts_with("fusion.thresholds.")
        || key == "fusion.exclude"
        || key.starts_with("power.policy.")
}

/// The configuration file's settings in force (without the installed
/// settings patch), and the way to change the live part of them.
pub struct ConfigInForce {
    state: Mutex<InForce>,
    live: Option<watch::Sender<Settings>>,
    installer: Option<Arc<Mutex<super::Installer>>>,
}

struct InForce {
    cfg: Arc<Config>,
    text: Option<String>,
}

impl ConfigInForce {
    /// The configuration `cfg` read from `text` (the file's text, if any),
    /// changed live through `live` and the installer's patch.
    pub fn new(
        cfg: Config,
        text: Option<String>,
        live: Option<watch::Sender<Settings>>,
        installer: Option<Arc<Mutex<super::Installer>>>,
    ) -> ConfigInForce {
        ConfigInForce {
            state: Mutex::new(InForce {
                cfg: Arc::new(cfg),
                text,
            }),
            live,
            installer,
        }
    }

    /// The file's configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.lock().cfg.clone()
    }

    /// The file's text in force (at start, or as last applied live).
    pub fn text(&self) -> Option<String> {
        self.lock().text.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InForce> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live settings `new` would give: the installed settings patch
    /// over it, validated. `Err` when nothing can change live here (the
    /// node runs no live tasks) or the patched configuration is invalid.
    pub fn live_settings(&self, new: &Config) -> Result<LiveSettings, String> {
        if self.live.is_none() {
            return Err("this node applies no configuration change while it runs".into());
        }
        let (patch, version) = match &self.installer {
            Some(i) => {
                let i = i.lock().unwrap_or_else(|e| e.into_inner());
                (i.settings_patch(), i.state().settings_version)
            }
            None => (None, 0),
        };
        let mut patched = new.clone();
        if let Some(p) = &patch {
            super::install::apply_patch(&mut patched, p);
        }
        let errors = patched.validate();
        if !errors.0.is_empty() {
            return Err(format!(
                "the installed settings do not fit the new configuration: {errors}"
            ));
        }
        Ok(LiveSettings::of(&patched, version))
    }

    /// Puts `new` (read from `text`) in force: its live part at once, and
    /// as the base that later settings bundles patch. Call it only when
    /// every changed key is [`key_is_live`] and [`Self::live_settings`]
    /// succeeded.
    pub fn apply(&self, new: Config, text: String) -> Result<(), String> {
        let settings = self.live_settings(&new)?;
        if let Some(i) = &self.installer {
            i.lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_base_config(new.clone());
        }
        {
            let mut s = self.lock();
            s.cfg = Arc::new(new);
            s.text = Some(text);
        }
        if let Some(tx) = &self.live {
            tx.send_replace(Some(Arc::new(settings)));
        }
        Ok(())
    }
}
