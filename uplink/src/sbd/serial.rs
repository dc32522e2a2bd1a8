//! Opening the modem's serial port with tokio-serial: 8N1, no flow control
//! (the RockBLOCK wires only TX and RX; the driver sends `AT&K0`).

use std::path::Path;

use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, StopBits};

/// The async serial port type [`open_serial`] returns.
pub use tokio_serial::SerialStream;

/// Why the serial port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open serial port {path}: {source}")]
pub struct SerialError {
    /// The device path.
    pub path: String,
    /// The error.
    #[source]
    pub source: tokio_serial::Error,
}

/// Opens `path` at `baud` (19200 for a RockBLOCK 9603). Needs a tokio runtime.
pub fn open_serial(path: &Path, baud: u32) -> Result<SerialStream, SerialError> {
    let name = path.to_string_lossy().into_owned();
    tokio_serial::new(name.clone(), baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .open_native_async()
        .map_err(|source| SerialError { path: name, source })
}
