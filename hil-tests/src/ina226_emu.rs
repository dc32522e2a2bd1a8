//! A register-level INA226 current and power monitor on an emulated I2C
//! bus, for running the real `ina226` driver (and `power::Ina226Monitor`)
//! without hardware.
//!
//! What it models (TI datasheet SBOS547):
//! - one device at a configured address (0x40..=0x4F); any other address,
//!   and every transaction while unplugged, gets a NACK on the address;
//! - 16-bit big-endian registers: configuration 0x00 (reset value 0x4127;
//!   writing bit 15 resets every register), shunt voltage 0x01 (signed,
//!   2.5 µV per bit, saturating at ±81.92 mV), bus voltage 0x02 (1.25 mV
//!   per bit, at most 40.96 V), power 0x03, current 0x04, calibration 0x05,
//!   mask/enable 0x06, alert limit 0x07, manufacturer id 0xFE (0x5449, "TI")
//!   and die id 0xFF (0x2260);
//! - the chip's arithmetic: current = shunt × calibration / 2048 and
//!   power = current × bus / 20000, both 0 while the calibration is 0;
//! - the protocol: a one-byte write sets the register pointer, a three-byte
//!   write sets a register; a read returns the pointed register (two
//!   bytes), without auto-increment;
//! - faults: a queue of faults for coming transactions, an unplugged switch,
//!   and a brown-out that puts every register back to its reset value
//!   behind the driver's back.
//!
//! What it does not model: conversion timing and averaging (a reading is
//! the set value, exactly, from the moment it is set), the alert pin, and
//! SMBus alert response. It is deterministic.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

pub use crate::bme280_emu::{EmuError, Fault};

/// Texas Instruments' manufacturer id.
pub const MANUFACTURER_ID: u16 = 0x5449;
/// The INA226's die id.
pub const DIE_ID: u16 = 0x2260;
/// Configuration register at reset.
pub const CONFIG_RESET: u16 = 0x4127;
/// Shunt voltage per bit, µV.
pub const SHUNT_LSB_UV: f64 = 2.5;
/// Bus voltage per bit, mV.
pub const BUS_LSB_MV: f64 = 1.25;

const REG_CONFIG: u8 = 0x00;
const REG_SHUNT: u8 = 0x01;
const REG_BUS: u8 = 0x02;
const REG_POWER: u8 = 0x03;
const REG_CURRENT: u8 = 0x04;
const REG_CAL: u8 = 0x05;
const REG_MASK: u8 = 0x06;
const REG_ALERT: u8 = 0x07;
const REG_MANUFACTURER: u8 = 0xFE;
const REG_DIE: u8 = 0xFF;

#[derive(Debug)]
struct State {
    address: u8,
    manufacturer: u16,
    config: u16,
    shunt_raw: i16,
    bus_raw: u16,
    cal: u16,
    mask: u16,
    alert: u16,
    pointer: u8,
    faults: VecDeque<Fault>,
    unplugged: bool,
    transactions: u64,
}

impl State {
    fn reset(&mut self) {
        self.config = CONFIG_RESET;
        self.cal = 0;
        self.mask = 0;
        self.alert = 0;
    }

    fn current_raw(&self) -> i16 {
        let c = i64::from(self.shunt_raw) * i64::from(self.cal) / 2048;
        c.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
    }

    fn read(&self, reg: u8) -> u16 {
        match reg {
            REG_CONFIG => self.config,
            REG_SHUNT => self.shunt_raw as u16,
            REG_BUS => self.bus_raw,
            REG_POWER => {
                let p = i64::from(self.current_raw()).abs() * i64::from(self.bus_raw) / 20_000;
                p.clamp(0, i64::from(u16::MAX)) as u16
            }
            REG_CURRENT => self.current_raw() as u16,
            REG_CAL => self.cal,
            REG_MASK => self.mask,
            REG_ALERT => self.alert,
            REG_MANUFACTURER => self.manufacturer,
            REG_DIE => DIE_ID,
            _ => 0,
        }
    }

    fn write(&mut self, reg: u8, value: u16) {
        match reg {
            REG_CONFIG if value & 0x8000 != 0 => self.reset(),
            REG_CONFIG => self.config = value,
            // Bit 0 of the calibration register is reserved and reads 0.
            REG_CAL => self.cal = value & 0x7FFF,
            REG_MASK => self.mask = value,
            REG_ALERT => self.alert = value,
            _ => {}
        }
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
                Operation::Write(bytes) => match **bytes {
                    [reg] => self.pointer = reg,
                    [reg, hi, lo] => {
                        self.pointer = reg;
                        self.write(reg, u16::from_be_bytes([hi, lo]));
                    }
                    _ => return Err(EmuError(ErrorKind::Other)),
                },
                Operation::Read(buf) => {
                    let v = self.read(self.pointer).to_be_bytes();
                    for (i, b) in buf.iter_mut().enumerate() {
                        *b = v[i % 2];
                    }
                }
            }
        }
        Ok(())
    }
}

/// A handle on an emulated INA226; clones share the same chip.
#[derive(Clone, Debug)]
pub struct Ina226Emu {
    state: Arc<Mutex<State>>,
}

impl Ina226Emu {
    /// A chip at `address`, in its reset state, measuring 0 V and 0 A.
    pub fn new(address: u8) -> Ina226Emu {
        Ina226Emu {
            state: Arc::new(Mutex::new(State {
                address,
                manufacturer: MANUFACTURER_ID,
                config: CONFIG_RESET,
                shunt_raw: 0,
                bus_raw: 0,
                cal: 0,
                mask: 0,
                alert: 0,
                pointer: 0,
                faults: VecDeque::new(),
                unplugged: false,
                transactions: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another chip's manufacturer id (something else at the address).
    pub fn set_manufacturer_id(&self, id: u16) {
        self.lock().manufacturer = id;
    }

    /// The voltage across the shunt, µV (rounded to the chip's 2.5 µV
    /// step, saturating at its ±81.92 mV range).
    pub fn set_shunt_uv(&self, uv: f64) {
        let raw = (uv / SHUNT_LSB_UV).round();
        self.lock().shunt_raw = raw.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
    }

    /// The current through a shunt of `ohms`, amperes.
    pub fn set_current(&self, amps: f64, ohms: f64) {
        self.set_shunt_uv(amps * ohms * 1e6);
    }

    /// The bus voltage, mV (rounded to 1.25 mV, 0 to 40.96 V).
    pub fn set_bus_mv(&self, mv: f64) {
        let raw = (mv / BUS_LSB_MV).round();
        self.lock().bus_raw = raw.clamp(0.0, 32_767.0) as u16;
    }

    /// The raw registers the driver reads: (shunt, bus, current, calibration).
    pub fn raw(&self) -> (i16, u16, i16, u16) {
        let s = self.lock();
        (s.shunt_raw, s.bus_raw, s.current_raw(), s.cal)
    }

    /// The configuration register.
    pub fn config(&self) -> u16 {
        self.lock().config
    }

    /// Queues a fault for the next transaction (one per call).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Unplugs (every transaction NACKs) or plugs the chip back.
    pub fn set_unplugged(&self, unplugged: bool) {
        self.lock().unplugged = unplugged;
    }

    /// A brown-out: every register back to its reset value.
    pub fn brown_out(&self) {
        self.lock().reset();
    }

    /// Transactions so far, failed ones included.
    pub fn transactions(&self) -> u64 {
        self.lock().transactions
    }
}

impl ErrorType for Ina226Emu {
    type Error = EmuError;
}

impl I2c for Ina226Emu {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.lock().transaction(address, operations)
    }
}
