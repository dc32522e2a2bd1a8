//! Whether the cellular modem's network interface can carry traffic: its
//! `operstate` (`sys/class/net/<if>/operstate`) and a route through it
//! (`proc/net/route`), both read under an injectable root (`/` on the node,
//! a fake tree in tests).
//!
//! The interface is ready when its `operstate` is `up`, or `unknown` (what
//! raw-IP and point-to-point interfaces such as `qmi_wwan`'s `wwan0` or
//! `ppp0` report while they carry traffic), and a route marked up (flag
//! `RTF_UP`) names it. A missing file is "not ready", not an error: the
//! interface appears only once the modem has enumerated.

use std::path::{Path, PathBuf};

/// `RTF_UP` in `/proc/net/route`'s `Flags` column.
const RTF_UP: u32 = 0x1;

/// The interface as last read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetState {
    /// `operstate`, trimmed; `None` while the interface does not exist.
    pub operstate: Option<String>,
    /// A route marked up goes through it.
    pub route: bool,
}

impl NetState {
    /// Ready to carry traffic (see the module documentation).
    pub fn ready(&self) -> bool {
        matches!(self.operstate.as_deref(), Some("up" | "unknown")) && self.route
    }
}

/// Reads `interface` under `root`.
pub fn read(root: &Path, interface: &str) -> NetState {
    let operstate = std::fs::read_to_string(operstate_path(root, interface))
        .ok()
        .map(|s| s.trim().to_string());
    let route = std::fs::read_to_string(root.join("proc/net/route"))
        .map(|t| has_route(&t, interface))
        .unwrap_or(false);
    NetState { operstate, route }
}

fn operstate_path(root: &Path, interface: &str) -> PathBuf {
    root.join("sys/class/net").join(interface).join("operstate")
}

/// Whether `/proc/net/route`'s `text` has a route marked up through
/// `interface`. Lines that do not parse are skipped.
pub fn has_route(text: &str, interface: &str) -> bool {
    text.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (Some(iface), Some(_dest), Some(_gw), Some(flags)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return false;
        };
        iface == interface && u32::from_str_radix(flags, 16).is_ok_and(|fl| fl & RTF_UP != 0)
    })
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake `/sys/class/net` and `/proc/net/route` for tests.
    use std::path::Path;

    /// Writes the interface's `operstate` (`None`: removes the interface).
    pub fn set_operstate(root: &Path, interface: &str, state: Option<&str>) {
        let dir = root.join("sys/class/net").join(interface);
        match state {
            Some(s) => {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("operstate"), format!("{s}\n")).unwrap();
            }
            None => {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// Writes `/proc/net/route` with a default route through each of
    /// `interfaces`.
    pub fn set_routes(root: &Path, interfaces: &[&str]) {
        let dir = root.join("proc/net");
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = String::from(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        );
        for i in interfaces {
            t.push_str(&format!(
                "{i}\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            ));
        }
        std::fs::write(dir.join("route"), t).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_the_interface_up_or_unknown_and_a_route_through_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        assert_eq!(read(root, "wwan0"), NetState::default());
        fake::set_operstate(root, "wwan0", Some("down"));
        fake::set_routes(root, &["eth0", "wwan0"]);
        assert!(!read(root, "wwan0").ready());
        fake::set_operstate(root, "wwan0", Some("unknown"));
        assert!(read(root, "wwan0").ready());
        fake::set_routes(root, &["eth0"]);
        let s = read(root, "wwan0");
        assert_eq!(s.operstate.as_deref(), Some("unknown"));
        assert!(!s.route && !s.ready());
        fake::set_operstate(root, "wwan0", Some("up"));
        fake::set_routes(root, &["wwan0"]);
        assert!(read(root, "wwan0").ready());
    }

    #[test]
    fn routes_not_up_and_garbage_lines_do_not_count() {
        let text = "Iface\tDestination\tGateway\tFlags\n\
                    wwan0\t00000000\t00000000\t0002\n\
                    wwan0 garbage\n\
                    wwan0\t0000A8C0\t00000000\tzz\n";
        assert!(!has_route(text, "wwan0"));
        assert!(has_route(
            "Iface\tDestination\tGateway\tFlags\nwwan0\t0000A8C0\t00000000\t0001\n",
            "wwan0"
        ));
        // The header is never a route.
        assert!(!has_route("wwan0\t0\t0\t0001\n", "wwan0"));
    }
}
