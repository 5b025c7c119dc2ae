//! Writing files safely, and I/O errors that name the file.

use std::path::Path;

use crate::error::CoreError;

/// An I/O error as users see it: the path and the reason.
pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

/// Write via a temporary file and rename, so a crash never leaves a torn file.
pub(crate) fn atomic_write(path: &Path, write: impl FnOnce(&Path) -> Result<(), CoreError>) -> Result<(), CoreError> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}
