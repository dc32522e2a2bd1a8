//! The kernel's view of the system clock: whether an NTP client (chrony,
//! systemd-timesyncd) keeps it synchronised, and its estimated error.
//! Read-only: `adjtimex` with no mode bits changes nothing and needs no
//! privilege. The service's seccomp filter (`ProtectClock=yes`) refuses
//! `adjtimex` all the same; the node then falls back to the flag file that
//! systemd-timesyncd keeps (`/run/systemd/timesync/synchronized`, present
//! once it has synchronised the clock). This is the thin edge: the rules that use it are tested on
//! fakes ([`super::guarded`]).

/// What the kernel says of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSync {
    /// An NTP client has synchronised the clock (the kernel's state is not
    /// `TIME_ERROR` and `STA_UNSYNC` is clear).
    pub synced: bool,
    /// The kernel's maximum error estimate, ms (unknown from the flag file).
    pub max_error_ms: Option<u32>,
}

/// The flag file systemd-timesyncd creates once it synchronised the clock.
const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

/// Reads the kernel's synchronisation status, or else the timesyncd flag
/// file; `None` where neither can be read.
pub fn read() -> Option<KernelSync> {
    adjtimex().or_else(|| {
        std::path::Path::new(TIMESYNC_FLAG)
            .exists()
            .then_some(KernelSync {
                synced: true,
                max_error_ms: None,
            })
    })
}

fn adjtimex() -> Option<KernelSync> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: adjtimex reads into a zeroed, properly sized struct; with
        // `modes` 0 it only reads the kernel's state.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state < 0 {
            return None;
        }
        let unsynced = state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0;
        let max_error_ms = u32::try_from((tx.maxerror / 1000).max(0)).unwrap_or(u32::MAX);
        Some(KernelSync {
            synced: !unsynced,
            max_error_ms: Some(max_error_ms),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
