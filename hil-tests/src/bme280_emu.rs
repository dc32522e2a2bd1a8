//! A register-level BME280 on an emulated I2C bus, for running the real
//! `bme280` driver (and the node's `Bme280Climate`) without hardware.
//!
//! What it models:
//! - one device at a configured address (0x76 or 0x77); any other address,
//!   and every transaction while "unplugged", gets a NACK on the address;
//! - the register map: chip id at 0xD0 (0x60, or e.g. 0x58 for a BMP280),
//!   soft reset at 0xE0 (0xB6 clears `ctrl_hum` 0xF2, `ctrl_meas` 0xF4 and
//!   `config` 0xF5, and puts the data registers back to their reset values
//!   0x80 00 00 / 0x80 00 00 / 0x80 00), calibration at 0x88..=0xA1 and
//!   0xE1..=0xE7, status at 0xF3, data at 0xF7..=0xFE;
//! - the I2C protocol: a write is a register address followed by (register,
//!   value) pairs (a lone register address sets the read pointer); reads
//!   auto-increment from the pointer;
//! - forced mode: writing `ctrl_meas` with mode 01 (or 10) converts once,
//!   latching the configured raw values (`adc_T`, `adc_P`, `adc_H`) into the
//!   data registers, the datasheet's "skipped" value 0x80000 (0x8000 for
//!   humidity) for a channel whose oversampling is 0, and goes back to sleep;
//!   `ctrl_hum` only takes effect at the next `ctrl_meas` write;
//! - faults: a queue of faults, one per coming transaction (NACK, bus
//!   error, arbitration loss), an "unplugged" switch, a brown-out (the
//!   control registers reset behind the driver's back), and counters of
//!   transactions, conversions and soft resets.
//!
//! What it does not model: timing (a conversion is done when the write
//! returns, `status` always reads 0), normal mode (11 converts once and stays
//! in 11), the IIR filter and oversampling noise (the raw values are exactly
//! what was set), SPI, and registers outside the map above (they read 0 and
//! ignore writes). It is deterministic: no clock, no randomness.
//!
//! [`Bme280Emu`] is a cheap handle on shared state: clone it, hand one clone
//! to the driver and keep the other to change values and inject faults.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

/// Chip id of a BME280.
pub const BME280_CHIP_ID: u8 = 0x60;
/// Chip id of a BMP280 (no humidity).
pub const BMP280_CHIP_ID: u8 = 0x58;

const REG_CHIP_ID: u8 = 0xD0;
const REG_RESET: u8 = 0xE0;
const REG_CTRL_HUM: u8 = 0xF2;
const REG_CTRL_MEAS: u8 = 0xF4;
const REG_CONFIG: u8 = 0xF5;
const REG_DATA: usize = 0xF7;
const DATA_RESET: [u8; 8] = [0x80, 0, 0, 0x80, 0, 0, 0x80, 0];
/// A temperature or pressure conversion that was skipped (oversampling 0).
pub const SKIPPED_20BIT: u32 = 0x80000;
/// A humidity conversion that was skipped (oversampling 0).
pub const SKIPPED_16BIT: u16 = 0x8000;

/// The trimming parameters (`dig_*`, datasheet section 4.2.2, table 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub dig_t1: u16,
    pub dig_t2: i16,
    pub dig_t3: i16,
    pub dig_p1: u16,
    pub dig_p2: i16,
    pub dig_p3: i16,
    pub dig_p4: i16,
    pub dig_p5: i16,
    pub dig_p6: i16,
    pub dig_p7: i16,
    pub dig_p8: i16,
    pub dig_p9: i16,
    pub dig_h1: u8,
    pub dig_h2: i16,
    pub dig_h3: u8,
    pub dig_h4: i16,
    pub dig_h5: i16,
    pub dig_h6: i8,
}

impl Calibration {
    /// The datasheet's worked example for temperature and pressure, with
    /// plausible humidity parameters.
    pub const EXAMPLE: Calibration = Calibration {
        dig_t1: 27504,
        dig_t2: 26435,
        dig_t3: -1000,
        dig_p1: 36477,
        dig_p2: -10685,
        dig_p3: 3024,
        dig_p4: 2855,
        dig_p5: 140,
        dig_p6: -7,
        dig_p7: 15500,
        dig_p8: -14600,
        dig_p9: 6000,
        dig_h1: 75,
        dig_h2: 362,
        dig_h3: 0,
        dig_h4: 324,
        dig_h5: 50,
        dig_h6: 30,
    };

    /// Writes the parameters into a register image, packed as on the chip.
    fn store(&self, regs: &mut [u8; 256]) {
        let words = [
            self.dig_t1,
            self.dig_t2 as u16,
            self.dig_t3 as u16,
            self.dig_p1,
            self.dig_p2 as u16,
            self.dig_p3 as u16,
            self.dig_p4 as u16,
            self.dig_p5 as u16,
            self.dig_p6 as u16,
            self.dig_p7 as u16,
            self.dig_p8 as u16,
            self.dig_p9 as u16,
        ];
        for (i, w) in words.iter().enumerate() {
            regs[0x88 + 2 * i..0x8A + 2 * i].copy_from_slice(&w.to_le_bytes());
        }
        regs[0xA1] = self.dig_h1;
        regs[0xE1..0xE3].copy_from_slice(&self.dig_h2.to_le_bytes());
        regs[0xE3] = self.dig_h3;
        // dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0]; dig_H5 = 0xE6[7:0] << 4 | 0xE5[7:4].
        regs[0xE4] = (self.dig_h4 >> 4) as u8;
        regs[0xE5] = (self.dig_h4 & 0x0F) as u8 | ((self.dig_h5 & 0x0F) << 4) as u8;
        regs[0xE6] = (self.dig_h5 >> 4) as u8;
        regs[0xE7] = self.dig_h6 as u8;
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::EXAMPLE
    }
}

/// A fault for one coming transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The address is not acknowledged.
    Nack,
    /// A bus error (misplaced START/STOP).
    Bus,
    /// Arbitration lost to another master.
    ArbitrationLoss,
}

impl Fault {
    /// The bus error this fault gives.
    pub(crate) fn kind(self) -> ErrorKind {
        match self {
            Fault::Nack => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            Fault::Bus => ErrorKind::Bus,
            Fault::ArbitrationLoss => ErrorKind::ArbitrationLoss,
        }
    }
}

/// A failed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmuError(pub ErrorKind);

impl embedded_hal::i2c::Error for EmuError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "emulated I2C: {}", self.0)
    }
}

impl std::error::Error for EmuError {}

/// The emulated chip and bus.
#[derive(Debug)]
struct State {
    address: u8,
    regs: [u8; 256],
    pointer: u8,
    /// Humidity oversampling in effect (copied from `ctrl_hum` at a `ctrl_meas` write).
    osrs_h: u8,
    adc: (u32, u32, u16),
    faults: VecDeque<Fault>,
    unplugged: bool,
    transactions: u64,
    conversions: u64,
    soft_resets: u64,
}

impl State {
    fn reset(&mut self) {
        for r in [REG_CTRL_HUM, REG_CTRL_MEAS, REG_CONFIG] {
            self.regs[r as usize] = 0;
        }
        self.regs[REG_DATA..REG_DATA + 8].copy_from_slice(&DATA_RESET);
        self.osrs_h = 0;
    }

    fn write(&mut self, reg: u8, value: u8) {
        match reg {
            REG_RESET if value == 0xB6 => {
                self.soft_resets += 1;
                self.reset();
            }
            REG_CTRL_HUM => self.regs[reg as usize] = value & 0x07,
            REG_CONFIG => self.regs[reg as usize] = value,
            REG_CTRL_MEAS => {
                self.osrs_h = self.regs[REG_CTRL_HUM as usize] & 0x07;
                let mode = value & 0x03;
                self.regs[reg as usize] = if matches!(mode, 0b01 | 0b10) {
                    value & !0x03 // back to sleep once converted
                } else {
                    value
                };
                if mode != 0 {
                    self.convert(value >> 5, (value >> 2) & 0x07);
                }
            }
            _ => {} // read-only or unmapped
        }
    }

    fn convert(&mut self, osrs_t: u8, osrs_p: u8) {
        self.conversions += 1;
        let (t, p, h) = self.adc;
        let t = if osrs_t == 0 {
            SKIPPED_20BIT
        } else {
            t & 0xF_FFFF
        };
        let p = if osrs_p == 0 {
            SKIPPED_20BIT
        } else {
            p & 0xF_FFFF
        };
        let h = if self.osrs_h == 0 { SKIPPED_16BIT } else { h };
        let d = &mut self.regs[REG_DATA..REG_DATA + 8];
        d[0..3].copy_from_slice(&[(p >> 12) as u8, (p >> 4) as u8, (p << 4) as u8]);
        d[3..6].copy_from_slice(&[(t >> 12) as u8, (t >> 4) as u8, (t << 4) as u8]);
        d[6..8].copy_from_slice(&h.to_be_bytes());
    }

    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), EmuError> {
        self.transactions += 1;
        let nack = EmuError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        if self.unplugged {
            return Err(nack);
        }
        if let Some(f) = self.faults.pop_front() {
            return Err(EmuError(f.kind()));
        }
        if address != self.address {
            return Err(nack);
        }
        for op in ops {
            match op {
                Operation::Write(bytes) => {
                    for pair in bytes.chunks(2) {
                        self.pointer = pair[0];
                        if let [reg, value] = *pair {
                            self.write(reg, value);
                        }
                    }
                }
                Operation::Read(buf) => {
                    for b in buf.iter_mut() {
                        *b = self.regs[self.pointer as usize];
                        self.pointer = self.pointer.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A handle on an emulated BME280; clones share the same chip.
#[derive(Clone, Debug)]
pub struct Bme280Emu {
    state: Arc<Mutex<State>>,
}

impl Bme280Emu {
    /// A BME280 at `address`, asleep, with the example calibration and raw
    /// values from the datasheet's example (`adc_T` 519888, `adc_P` 415148)
    /// and `adc_H` 30000.
    pub fn new(address: u8) -> Bme280Emu {
        let mut regs = [0u8; 256];
        regs[REG_CHIP_ID as usize] = BME280_CHIP_ID;
        Calibration::EXAMPLE.store(&mut regs);
        regs[REG_DATA..REG_DATA + 8].copy_from_slice(&DATA_RESET);
        let state = State {
            address,
            regs,
            pointer: 0,
            osrs_h: 0,
            adc: (519_888, 415_148, 30_000),
            faults: VecDeque::new(),
            unplugged: false,
            transactions: 0,
            conversions: 0,
            soft_resets: 0,
        };
        Bme280Emu {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the chip id (e.g. [`BMP280_CHIP_ID`]).
    pub fn set_chip_id(&self, id: u8) {
        self.lock().regs[REG_CHIP_ID as usize] = id;
    }

    /// Replaces the calibration parameters.
    pub fn set_calibration(&self, c: &Calibration) {
        c.store(&mut self.lock().regs);
    }

    /// Sets the raw values the next conversions deliver (20, 20 and 16 bits).
    pub fn set_adc(&self, adc_t: u32, adc_p: u32, adc_h: u16) {
        self.lock().adc = (adc_t, adc_p, adc_h);
    }

    /// Makes each of the next `n` transactions fail with `fault` (after any
    /// faults already queued).
    pub fn inject(&self, fault: Fault, n: usize) {
        self.lock().faults.extend(std::iter::repeat_n(fault, n));
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> usize {
        self.lock().faults.len()
    }

    /// Unplugs (every transaction is NACKed) or plugs the sensor back in.
    pub fn set_unplugged(&self, unplugged: bool) {
        self.lock().unplugged = unplugged;
    }

    /// A brown-out or a stray soft reset: the control registers and data go
    /// back to their reset values without the driver knowing.
    pub fn brown_out(&self) {
        self.lock().reset();
    }

    /// A register's value, read without a bus transaction.
    pub fn register(&self, reg: u8) -> u8 {
        self.lock().regs[reg as usize]
    }

    /// `ctrl_hum`, `ctrl_meas` and `config`.
    pub fn control(&self) -> (u8, u8, u8) {
        let s = self.lock();
        let r = |a: u8| s.regs[a as usize];
        (r(REG_CTRL_HUM), r(REG_CTRL_MEAS), r(REG_CONFIG))
    }

    /// The power mode bits of `ctrl_meas` (0 = sleep, 1 or 2 = forced, 3 = normal).
    pub fn mode(&self) -> u8 {
        self.register(REG_CTRL_MEAS) & 0x03
    }

    /// Transactions attempted so far, failed ones included.
    pub fn transactions(&self) -> u64 {
        self.lock().transactions
    }

    /// Conversions (forced measurements) so far.
    pub fn conversions(&self) -> u64 {
        self.lock().conversions
    }

    /// Soft resets commanded over the bus so far.
    pub fn soft_resets(&self) -> u64 {
        self.lock().soft_resets
    }
}

impl ErrorType for Bme280Emu {
    type Error = EmuError;
}

impl I2c for Bme280Emu {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.lock().transaction(address, operations)
    }
}
