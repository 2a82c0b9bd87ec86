//! Plain files (character devices are in `chardev`).

use std::path::Path;

use tokio::fs::OpenOptions;

use super::{BoxTransport, TransportError};

/// Opens (creating) a regular file for appending.
pub(super) async fn open_append(path: &Path) -> Result<BoxTransport, TransportError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .await
        .map_err(|e| TransportError::from_io(path.display().to_string(), e))?;
    Ok(Box::new(file))
}
