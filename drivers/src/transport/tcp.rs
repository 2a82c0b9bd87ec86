//! TCP transport (network printers on port 9100, fiscal registers over Ethernet).

use std::time::Duration;

use tokio::net::TcpStream;

use super::{BoxTransport, TransportError};

/// Connects to `host:port` within `timeout`.
pub(super) async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<BoxTransport, TransportError> {
    let what = format!("tcp {host}:{port}");
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(TransportError::from_io(what, e)),
        Err(_) => {
            return Err(TransportError::Timeout {
                what,
                after: timeout,
            });
        }
    };
    // Receipts and fiscal frames are small and latency-sensitive.
    stream
        .set_nodelay(true)
        .map_err(|e| TransportError::from_io(what, e))?;
    Ok(Box::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connects_and_carries_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 3];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        let mut t = connect("127.0.0.1", port, Duration::from_secs(2))
            .await
            .unwrap();
        t.write_all(b"abc").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"abc");
    }

    #[tokio::test]
    async fn refused_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = connect("127.0.0.1", port, Duration::from_secs(2))
            .await
            .err()
            .expect("connecting to a closed port must fail");
        assert!(err.to_string().contains("tcp 127.0.0.1:"), "{err}");
    }
}
