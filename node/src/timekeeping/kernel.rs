//! The kernel's view of the system clock: whether an NTP client (chrony,
//! systemd-timesyncd) keeps it synchronised, and its estimated error.
//! Read-only: `adjtimex` with no mode bits changes nothing and needs no
//! privilege. This is the thin edge: the rules that use it are tested on
//! fakes ([`super::guarded`]).

/// What the kernel says of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSync {
    /// An NTP client has synchronised the clock (the kernel's state is not
    /// `TIME_ERROR` and `STA_UNSYNC` is clear).
    pub synced: bool,
    /// The kernel's maximum error estimate, ms.
    pub max_error_ms: u32,
}

/// Reads the kernel's synchronisation status; `None` where it cannot be
/// read (not Linux, or the call failed).
pub fn read() -> Option<KernelSync> {
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
            max_error_ms,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
