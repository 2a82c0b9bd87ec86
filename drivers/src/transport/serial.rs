//! Serial ports and USB-CDC ACM devices through tokio-serial.

use std::path::PathBuf;
use std::time::Duration;

use tokio_serial::SerialPortBuilderExt;

use super::{BoxTransport, TransportError};

/// Parity bit setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parity {
    /// No parity bit (the usual 8N1).
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Flow control setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowControl {
    /// No flow control.
    #[default]
    None,
    /// Hardware RTS/CTS: printers hold CTS low while their buffer is full.
    RtsCts,
    /// Software XON/XOFF.
    XonXoff,
}

/// How to open a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    /// Device path (`/dev/ttyUSB0`, `/dev/serial/by-id/...`, a pty).
    pub path: PathBuf,
    /// Baud rate.
    pub baud: u32,
    /// Data bits, 5 to 8.
    pub data_bits: u8,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Flow control.
    pub flow_control: FlowControl,
}

impl SerialSettings {
    /// 8N1 without flow control at `baud`.
    pub fn new(path: impl Into<PathBuf>, baud: u32) -> Self {
        SerialSettings {
            path: path.into(),
            baud,
            data_bits: 8,
            stop_bits: 1,
            parity: Parity::None,
            flow_control: FlowControl::None,
        }
    }
}

pub(super) fn open(s: &SerialSettings) -> Result<BoxTransport, TransportError> {
    let what = s.path.display().to_string();
    let data_bits = match s.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let stop_bits = if s.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let flow = match s.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::RtsCts => tokio_serial::FlowControl::Hardware,
        FlowControl::XonXoff => tokio_serial::FlowControl::Software,
    };
    let path = s.path.to_string_lossy().into_owned();
    let mut port = tokio_serial::new(path, s.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(flow)
        .timeout(Duration::from_millis(100))
        .open_native_async()
        .map_err(|e| TransportError::from_io(what.clone(), e.into()))?;
    // Two daemons (or a daemon and a getty) on one port interleave bytes;
    // TIOCEXCL makes the second open fail with EBUSY instead.
    port.set_exclusive(true)
        .map_err(|e| TransportError::from_io(what, e.into()))?;
    Ok(Box::new(port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn opens_a_pty_and_carries_bytes() {
        let (mut device, host) = tokio_serial::SerialStream::pair().unwrap();
        // The host side of the pair is what a daemon would open by path.
        use tokio_serial::SerialPort;
        let path = host.name().expect("pty has a name");
        let mut t = open(&SerialSettings::new(path, 9600)).unwrap();
        device.write_all(b";123?\r").await.unwrap();
        let mut buf = [0u8; 6];
        t.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b";123?\r");
    }

    #[tokio::test]
    async fn a_hang_up_ends_reading() {
        let (device, host) = tokio_serial::SerialStream::pair().unwrap();
        use tokio_serial::SerialPort;
        let path = host.name().expect("pty has a name");
        drop(host);
        let mut t = open(&SerialSettings::new(path, 9600)).unwrap();
        drop(device);
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), t.read(&mut buf)).await;
        match r {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            other => panic!("expected EOF or an error after hang-up, got {other:?}"),
        }
    }

    #[test]
    fn missing_port_is_not_found() {
        let err = open(&SerialSettings::new("/dev/does-not-exist-posbridge", 9600))
            .err()
            .expect("must fail");
        assert!(matches!(err, TransportError::NotFound { .. }), "{err:?}");
    }
}
