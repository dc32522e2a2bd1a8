//! Finding the node's serial port: `field-tools link ports` lists the
//! serial devices the system knows (with the USB vendor and product of
//! USB ones), and `--port auto` picks the only USB serial device.
//! Listing goes through the `serialport` crate (under `tokio-serial`),
//! which reads `/sys/class/tty` on Linux.

use std::path::PathBuf;

use serde::Serialize;
use tokio_serial::{SerialPortInfo, SerialPortType};

/// One serial device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortInfo {
    /// The device, e.g. `/dev/ttyUSB0`.
    pub path: String,
    /// `usb`, `pci`, `bluetooth` or `other` (a SoC UART, e.g. the Pi's).
    pub kind: &'static str,
    /// USB vendor id.
    pub vid: Option<u16>,
    /// USB product id.
    pub pid: Option<u16>,
    /// USB manufacturer string.
    pub manufacturer: Option<String>,
    /// USB product string.
    pub product: Option<String>,
    /// USB serial number.
    pub serial_number: Option<String>,
}

impl PortInfo {
    /// `vid:pid`, hex, for a USB device.
    pub fn usb_id(&self) -> Option<String> {
        Some(format!("{:04x}:{:04x}", self.vid?, self.pid?))
    }
}

impl From<SerialPortInfo> for PortInfo {
    fn from(p: SerialPortInfo) -> PortInfo {
        let mut info = PortInfo {
            path: p.port_name,
            kind: "other",
            vid: None,
            pid: None,
            manufacturer: None,
            product: None,
            serial_number: None,
        };
        match p.port_type {
            SerialPortType::UsbPort(u) => {
                info.kind = "usb";
                info.vid = Some(u.vid);
                info.pid = Some(u.pid);
                info.manufacturer = u.manufacturer;
                info.product = u.product;
                info.serial_number = u.serial_number;
            }
            SerialPortType::PciPort => info.kind = "pci",
            SerialPortType::BluetoothPort => info.kind = "bluetooth",
            SerialPortType::Unknown => {}
        }
        info
    }
}

/// Why the port could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    /// The system's list of serial devices cannot be read.
    #[error("cannot list the serial ports: {0}")]
    List(String),
    /// `--port auto` with no USB serial device.
    #[error(
        "--port auto: no USB serial device found (is the node's USB cable or the USB-serial adapter plugged in? `field-tools link ports` lists every serial port; give one with --port DEV)"
    )]
    NoUsbPort,
    /// `--port auto` with several.
    #[error("--port auto: {} USB serial devices found ({}): choose one with --port DEV", .0.len(), .0.join(", "))]
    SeveralUsbPorts(Vec<String>),
}

/// Every serial device, sorted by path.
pub fn list() -> Result<Vec<PortInfo>, PortsError> {
    // The crate's Linux scan panics without this directory (a container
    // without /sys): say so instead.
    #[cfg(target_os = "linux")]
    if !std::path::Path::new("/sys/class/tty").is_dir() {
        return Err(PortsError::List(
            "/sys/class/tty is not there (is /sys mounted?)".into(),
        ));
    }
    let ports = tokio_serial::available_ports().map_err(|e| PortsError::List(e.to_string()))?;
    let mut ports: Vec<PortInfo> = ports.into_iter().map(PortInfo::from).collect();
    ports.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ports)
}

/// The only USB serial device of `ports`.
pub fn choose_usb(ports: &[PortInfo]) -> Result<PathBuf, PortsError> {
    let usb: Vec<&PortInfo> = ports.iter().filter(|p| p.kind == "usb").collect();
    match usb.as_slice() {
        [] => Err(PortsError::NoUsbPort),
        [one] => Ok(PathBuf::from(&one.path)),
        several => Err(PortsError::SeveralUsbPorts(
            several
                .iter()
                .map(|p| match (p.usb_id(), &p.product) {
                    (Some(id), Some(name)) => format!("{} {id} {name}", p.path),
                    (Some(id), None) => format!("{} {id}", p.path),
                    _ => p.path.clone(),
                })
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(path: &str, usb: Option<(u16, u16, &str)>) -> PortInfo {
        let port_type = match usb {
            Some((vid, pid, product)) => SerialPortType::UsbPort(tokio_serial::UsbPortInfo {
                vid,
                pid,
                serial_number: Some("A1".into()),
                manufacturer: Some("FTDI".into()),
                product: Some(product.into()),
            }),
            None => SerialPortType::Unknown,
        };
        PortInfo::from(SerialPortInfo {
            port_name: path.into(),
            port_type,
        })
    }

    #[test]
    fn auto_picks_the_only_usb_device_and_explains_otherwise() {
        let uart = port("/dev/ttyAMA0", None);
        let ftdi = port("/dev/ttyUSB0", Some((0x0403, 0x6001, "FT232R USB UART")));
        let gadget = port("/dev/ttyACM0", Some((0x1d6b, 0x0104, "fieldnode")));
        assert_eq!(ftdi.usb_id().as_deref(), Some("0403:6001"));
        assert_eq!((uart.kind, uart.usb_id()), ("other", None));
        assert_eq!(
            choose_usb(&[uart.clone(), ftdi.clone()]).unwrap(),
            PathBuf::from("/dev/ttyUSB0")
        );
        let none = choose_usb(std::slice::from_ref(&uart)).unwrap_err();
        assert!(matches!(none, PortsError::NoUsbPort));
        assert!(
            none.to_string().contains("field-tools link ports"),
            "{none}"
        );
        let two = choose_usb(&[ftdi, uart, gadget]).unwrap_err().to_string();
        assert!(two.contains("2 USB serial devices"), "{two}");
        assert!(
            two.contains("/dev/ttyUSB0 0403:6001 FT232R USB UART"),
            "{two}"
        );
        assert!(two.contains("/dev/ttyACM0 1d6b:0104 fieldnode"), "{two}");
    }

    #[test]
    fn listing_the_ports_of_this_machine_does_not_fail() {
        // Whatever this machine has (often nothing): the listing works and
        // is sorted.
        if let Ok(ports) = list() {
            assert!(ports.windows(2).all(|w| w[0].path <= w[1].path));
        }
    }
}
