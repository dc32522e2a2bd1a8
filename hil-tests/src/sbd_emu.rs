//! An Iridium 9603 SBD modem emulator on a pseudo-terminal, for testing the
//! real driver (`uplink::sbd`) over real serial semantics without a modem.
//!
//! The emulator opens a pty pair in-process (`openpty`, raw mode: no echo or
//! line editing by the line discipline), serves the AT command set on the
//! master side from a thread, and hands the slave path to the code under
//! test. It follows the commands the driver uses (`AT`, `ATE0/1`, `AT&K0`,
//! `AT+SBDMTA`, `AT+CSQ`, `AT-MSSTM`, `AT+SBDWB`, `AT+SBDIX`, `AT+SBDRB`,
//! `AT+SBDD0/1/2`); anything else is `ERROR`.
//!
//! Fault injection: a scripted queue of MO statuses for the next sessions,
//! MT messages waiting at the "gateway", corrupted MT checksums, a modem that
//! stops answering (until power-cycled, or for N commands), no network time.
//! Every MO message that a successful session delivered is recorded, and
//! every session with the MO status it answered and the MO buffer it had.
//!
//! Power: by default the modem is always powered. With a power probe
//! ([`SbdEmulator::set_power_probe`], for example the state of the load
//! switch the code under test drives, and its count of switch-ons), the
//! modem answers only while the probe says it is on; a command that
//! arrives while it is off is counted and ignored, as an unpowered modem
//! would, and each new switch-on boots it (as a power cycle does).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// When the emulated modem does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Silence {
    /// It answers.
    #[default]
    Answering,
    /// It ignores every command until it is power-cycled.
    UntilPowerCycle,
    /// It ignores the next N commands.
    ForCommands(u32),
}

/// One `AT+SBDIX` session as the emulator answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The MO status answered (0 = delivered; see the scripted statuses).
    pub mo_status: u8,
    /// The MO buffer when the session ran (`None`: a mailbox check).
    pub mo: Option<Vec<u8>>,
}

/// The emulated modem's state, shared between the serving thread and the test.
struct State {
    echo: bool,
    ring_alerts: bool,
    signal: u8,
    /// Iridium system time in 90 ms ticks; `None` = no network service.
    network_ticks: Option<u32>,
    mo: Option<Vec<u8>>,
    mt: Option<Vec<u8>>,
    outcomes: VecDeque<u8>,
    gateway_mt: VecDeque<Vec<u8>>,
    delivered: Vec<Vec<u8>>,
    session_log: Vec<Session>,
    momsn: u32,
    mtmsn: u32,
    silence: Silence,
    corrupt_mt_reads: u32,
    commands: Vec<String>,
    power_cycles: u32,
    sessions: u32,
    /// Credits the gateway billed, by RockBLOCK's rule.
    billed: u64,
    /// How long a session takes before its answer (real ones take seconds).
    session_delay: Duration,
    binary_timeout: Duration,
    /// Whether the modem has power; `None`: always.
    probe: Option<PowerProbe>,
    /// The probe's last count of switch-ons.
    switch_ons: u64,
    /// Switch-ons seen.
    power_ups: u32,
    /// Commands that arrived while the modem had no power.
    unpowered_commands: u32,
}

/// Says whether the emulated modem has power now, and how many times its
/// power was switched on so far.
pub type PowerProbe = Arc<dyn Fn() -> (bool, u64) + Send + Sync>;

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("sessions", &self.sessions)
            .field("power_cycles", &self.power_cycles)
            .field("power_ups", &self.power_ups)
            .field("unpowered_commands", &self.unpowered_commands)
            .finish_non_exhaustive()
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            echo: true,
            ring_alerts: false,
            signal: 4,
            network_ticks: Some(0x0A1B_2C3D),
            mo: None,
            mt: None,
            outcomes: VecDeque::new(),
            gateway_mt: VecDeque::new(),
            delivered: Vec::new(),
            session_log: Vec::new(),
            momsn: 0,
            mtmsn: 0,
            silence: Silence::Answering,
            corrupt_mt_reads: 0,
            commands: Vec::new(),
            power_cycles: 0,
            sessions: 0,
            billed: 0,
            session_delay: Duration::ZERO,
            binary_timeout: Duration::from_secs(2),
            probe: None,
            switch_ons: 0,
            power_ups: 0,
            unpowered_commands: 0,
        }
    }
}

impl State {
    /// What a power cycle does to a 9603: buffers empty, echo back on; the
    /// gateway's queue and the sequence numbers survive.
    fn power_cycle(&mut self) {
        self.echo = true;
        self.ring_alerts = false;
        self.mo = None;
        self.mt = None;
        if self.silence == Silence::UntilPowerCycle {
            self.silence = Silence::Answering;
        }
        self.power_cycles += 1;
    }

    /// Reads the power probe; a switch-on boots the modem. Returns whether
    /// it has power.
    fn check_power(&mut self) -> bool {
        let Some(probe) = &self.probe else {
            return true;
        };
        let (on, switch_ons) = probe();
        if switch_ons > self.switch_ons {
            self.power_cycle();
            self.power_cycles -= 1;
            self.power_ups += 1;
        }
        self.switch_ons = switch_ons;
        on
    }
}

fn checksum(bytes: &[u8]) -> u16 {
    bytes
        .iter()
        .fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)))
}

/// A handle that power-cycles the emulated modem (what a GPIO on the
/// modem's enable pin would do). Cheap to clone; give it to the driver's
/// `ModemPower`.
#[derive(Clone, Debug)]
pub struct EmuPowerSwitch(Arc<Mutex<State>>);

impl EmuPowerSwitch {
    /// Switches the emulated modem off and on.
    pub fn power_cycle(&self) {
        lock(&self.0).power_cycle();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in a test thread must not hide the emulator's state.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running emulator. Dropping it stops the serving thread.
pub struct SbdEmulator {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Held open so the master never sees a hang-up between the driver's opens.
    _slave: OwnedFd,
}

impl SbdEmulator {
    /// Opens a pty pair in raw mode and starts serving on it.
    pub fn start() -> std::io::Result<SbdEmulator> {
        let pty = openpty(None, None).map_err(std::io::Error::from)?;
        let mut t = tcgetattr(pty.slave.as_fd()).map_err(std::io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let path = nix::unistd::ttyname(pty.slave.as_fd()).map_err(std::io::Error::from)?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let master = File::from(pty.master);
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sbd-emu".into())
                .spawn(move || serve(master, &state, &stop))?
        };
        Ok(SbdEmulator {
            path,
            state,
            stop,
            thread: Some(thread),
            _slave: pty.slave,
        })
    }

    /// The serial device the driver opens (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues MO statuses for the next sessions (after these, sessions succeed with 0).
    pub fn script_sessions(&self, statuses: &[u8]) {
        lock(&self.state).outcomes.extend(statuses.iter().copied());
    }

    /// Puts an MT message in the gateway's queue; the next successful session
    /// brings it to the modem's MT buffer.
    pub fn queue_mt(&self, payload: &[u8]) {
        lock(&self.state).gateway_mt.push_back(payload.to_vec());
    }

    /// Makes the next `n` `AT+SBDRB` answers carry a wrong checksum.
    pub fn corrupt_mt_reads(&self, n: u32) {
        lock(&self.state).corrupt_mt_reads = n;
    }

    /// Sets when the modem does not answer.
    pub fn set_silence(&self, silence: Silence) {
        lock(&self.state).silence = silence;
    }

    /// Signal bars for `AT+CSQ` (0..=5).
    pub fn set_signal(&self, bars: u8) {
        lock(&self.state).signal = bars;
    }

    /// Iridium time ticks for `AT-MSSTM`; `None` answers "no network service".
    pub fn set_network_ticks(&self, ticks: Option<u32>) {
        lock(&self.state).network_ticks = ticks;
    }

    /// The power switch hook for the driver.
    pub fn power_switch(&self) -> EmuPowerSwitch {
        EmuPowerSwitch(Arc::clone(&self.state))
    }

    /// Every MO message delivered by a successful session, in order.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        lock(&self.state).delivered.clone()
    }

    /// Every session answered, in order, failed ones included.
    pub fn session_log(&self) -> Vec<Session> {
        lock(&self.state).session_log.clone()
    }

    /// Every command line received (answered or not), in order.
    pub fn commands(&self) -> Vec<String> {
        lock(&self.state).commands.clone()
    }

    /// The MO buffer's content now.
    pub fn mo_buffer(&self) -> Option<Vec<u8>> {
        lock(&self.state).mo.clone()
    }

    /// Power cycles so far.
    pub fn power_cycles(&self) -> u32 {
        lock(&self.state).power_cycles
    }

    /// Sessions so far (answered `AT+SBDIX`).
    pub fn sessions(&self) -> u32 {
        lock(&self.state).sessions
    }

    /// Credits billed so far by RockBLOCK's rule: for each successful
    /// session, one per started 50 bytes of its MO message (one for a
    /// mailbox check) plus the same for the MT message it brought; nothing
    /// for a failed session.
    pub fn billed_credits(&self) -> u64 {
        lock(&self.state).billed
    }

    /// Makes every session take `delay` before it answers (the modem is
    /// silent meanwhile, as a real one is during `AT+SBDIX`).
    pub fn set_session_delay(&self, delay: Duration) {
        lock(&self.state).session_delay = delay;
    }

    /// From now on the modem has power only while `probe` says so (see
    /// the module documentation); switch-ons count from the probe's count
    /// now.
    pub fn set_power_probe(&self, probe: PowerProbe) {
        let mut s = lock(&self.state);
        s.switch_ons = probe().1;
        s.probe = Some(probe);
    }

    /// Switch-ons seen since the power probe was set.
    pub fn power_ups(&self) -> u32 {
        lock(&self.state).power_ups
    }

    /// Commands that arrived while the modem had no power.
    pub fn unpowered_commands(&self) -> u32 {
        lock(&self.state).unpowered_commands
    }
}

impl Drop for SbdEmulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads whatever is available within `wait`; `None` on stop or a dead pty.
fn read_some(master: &mut File, stop: &AtomicBool, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(Vec::new());
        }
        let slice = left.min(Duration::from_millis(50));
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(slice).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {
                let mut buf = [0u8; 512];
                match master.read(&mut buf) {
                    Ok(0) => return None,
                    Ok(n) => return Some(buf[..n].to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: no slave open right now; wait for the next open.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

fn serve(mut master: File, state: &Mutex<State>, stop: &AtomicBool) {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // Handle every complete command line in `pending`.
        while let Some(end) = pending.iter().position(|&b| b == b'\r') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw)
                .trim_matches(|c: char| c.is_whitespace())
                .to_owned();
            if line.is_empty() {
                continue;
            }
            if handle(&mut master, &mut pending, state, stop, &line).is_none() {
                return;
            }
        }
        match read_some(&mut master, stop, Duration::from_millis(20)) {
            Some(bytes) => {
                let mut s = lock(state);
                if s.check_power() {
                    pending.extend(bytes);
                } else {
                    // No power: the bytes fall on a dead UART.
                    s.unpowered_commands += bytes.iter().filter(|&&b| b == b'\r').count() as u32;
                    pending.clear();
                }
            }
            None => return,
        }
    }
}

fn reply(master: &mut File, text: &str) -> Option<()> {
    master.write_all(text.as_bytes()).ok()?;
    master.flush().ok()
}

/// Answers one command line. `None` when the emulator must stop.
fn handle(
    master: &mut File,
    pending: &mut Vec<u8>,
    state: &Mutex<State>,
    stop: &AtomicBool,
    line: &str,
) -> Option<()> {
    if line.to_ascii_uppercase().starts_with("AT+SBDIX") {
        let delay = lock(state).session_delay;
        std::thread::sleep(delay);
    }
    let mut s = lock(state);
    s.commands.push(line.to_owned());
    match s.silence {
        Silence::Answering => {}
        Silence::UntilPowerCycle => return Some(()),
        Silence::ForCommands(n) => {
            s.silence = if n <= 1 {
                Silence::Answering
            } else {
                Silence::ForCommands(n - 1)
            };
            return Some(());
        }
    }
    let mut out = String::new();
    if s.echo {
        out.push_str(line);
        out.push_str("\r\n");
    }
    let upper = line.to_ascii_uppercase();
    let ok = "\r\nOK\r\n";
    match upper.as_str() {
        "AT" | "AT&K0" | "AT&K3" => out.push_str(ok),
        "ATE0" => {
            s.echo = false;
            out.push_str(ok);
        }
        "ATE1" => {
            s.echo = true;
            out.push_str(ok);
        }
        "AT+SBDMTA=0" | "AT+SBDMTA=1" => {
            s.ring_alerts = upper.ends_with('1');
            out.push_str(ok);
        }
        "AT+CSQ" => out.push_str(&format!("\r\n+CSQ:{}\r\n{ok}", s.signal)),
        "AT-MSSTM" => match s.network_ticks {
            Some(t) => out.push_str(&format!("\r\n-MSSTM: {t:08x}\r\n{ok}")),
            None => out.push_str(&format!("\r\n-MSSTM: no network service\r\n{ok}")),
        },
        "AT+SBDD0" | "AT+SBDD1" | "AT+SBDD2" => {
            if upper != "AT+SBDD1" {
                s.mo = None;
            }
            if upper != "AT+SBDD0" {
                s.mt = None;
            }
            out.push_str(&format!("\r\n0\r\n{ok}"));
        }
        "AT+SBDIX" | "AT+SBDIXA" => {
            s.sessions += 1;
            let status = s.outcomes.pop_front().unwrap_or(0);
            let session = Session {
                mo_status: status,
                mo: s.mo.clone(),
            };
            s.session_log.push(session);
            let success = status <= 4;
            let (mut mt_status, mut mt_len) = (0u8, 0usize);
            if success {
                let mo_credits = match s.mo.clone() {
                    Some(mo) => {
                        let credits = messages::pack::credits_for(mo.len());
                        s.delivered.push(mo);
                        credits
                    }
                    None => 1,
                };
                s.billed += u64::from(mo_credits);
                s.momsn = s.momsn.wrapping_add(1);
                if let Some(mt) = s.gateway_mt.pop_front() {
                    s.mtmsn = s.mtmsn.wrapping_add(1);
                    mt_status = 1;
                    mt_len = mt.len();
                    s.billed += u64::from(messages::pack::credits_for(mt_len));
                    s.mt = Some(mt);
                }
            }
            out.push_str(&format!(
                "\r\n+SBDIX: {status}, {}, {mt_status}, {}, {mt_len}, {}\r\n{ok}",
                s.momsn,
                s.mtmsn,
                s.gateway_mt.len()
            ));
        }
        "AT+SBDRB" => {
            let mt = s.mt.clone().unwrap_or_default();
            let mut sum = checksum(&mt);
            if s.corrupt_mt_reads > 0 {
                s.corrupt_mt_reads -= 1;
                sum = sum.wrapping_add(1);
            }
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&u16::try_from(mt.len()).unwrap_or(0).to_be_bytes());
            bytes.extend_from_slice(&mt);
            bytes.extend_from_slice(&sum.to_be_bytes());
            bytes.extend_from_slice(ok.as_bytes());
            drop(s);
            master.write_all(&bytes).ok()?;
            return master.flush().ok();
        }
        _ if upper.starts_with("AT+SBDWB=") => {
            let len = upper["AT+SBDWB=".len()..].parse::<usize>().unwrap_or(0);
            if len == 0 || len > 340 {
                out.push_str(&format!("\r\n3\r\n{ok}"));
            } else {
                out.push_str("\r\nREADY\r\n");
                let wait = s.binary_timeout;
                drop(s);
                reply(master, &out)?;
                out.clear();
                // Payload and checksum, possibly split over several reads.
                let deadline = Instant::now() + wait;
                while pending.len() < len + 2 {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    pending.extend(read_some(master, stop, left)?);
                }
                let mut s = lock(state);
                if pending.len() < len + 2 {
                    pending.clear();
                    out.push_str(&format!("\r\n1\r\n{ok}"));
                } else {
                    let frame: Vec<u8> = pending.drain(..len + 2).collect();
                    let (payload, sum) = frame.split_at(len);
                    if checksum(payload).to_be_bytes() == [sum[0], sum[1]] {
                        s.mo = Some(payload.to_vec());
                        out.push_str(&format!("\r\n0\r\n{ok}"));
                    } else {
                        out.push_str(&format!("\r\n2\r\n{ok}"));
                    }
                }
                drop(s);
                return reply(master, &out);
            }
        }
        _ => out.push_str("\r\nERROR\r\n"),
    }
    drop(s);
    reply(master, &out)
}
