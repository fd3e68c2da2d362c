//! The master-secret file: 32 raw bytes or 64 hex characters.

use std::path::Path;

/// Why a secret was refused (the message says which file and what was found).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

/// Parse a 32-byte secret: 32 raw bytes, or 64 hex characters with optional surrounding whitespace
/// (a trailing newline from `echo` or an editor is fine).
pub fn parse_secret(bytes: &[u8]) -> Result<[u8; 32], SecretError> {
    let trimmed = bytes.trim_ascii();
    if trimmed.len() == 64 && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(trimmed.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).expect("checked hex digit") as u8;
            *o = digit(pair[0]) << 4 | digit(pair[1]);
        }
        return Ok(out);
    }
    if bytes.len() == 32 {
        let mut out = [0u8; 32];
        out.copy_from_slice(bytes);
        return Ok(out);
    }
    Err(SecretError(format!(
        "a secret must be 32 raw bytes or 64 hex characters; found {} bytes{}",
        bytes.len(),
        if trimmed.iter().all(u8::is_ascii_hexdigit) {
            format!(" ({} hex characters)", trimmed.len())
        } else {
            String::new()
        }
    )))
}

/// Read and parse a secret file.
pub fn read_secret_file(path: &Path) -> Result<[u8; 32], SecretError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SecretError(format!("cannot read secret file {}: {e}", path.display())))?;
    parse_secret(&bytes).map_err(|e| SecretError(format!("secret file {}: {e}", path.display())))
}

/// A warning when the secret file can be read or written by group or others (mode & 0o077):
/// whoever reads the master secret can mint cookies for every node. `None` when the mode is
/// private or the file cannot be inspected (reading it reports that).
pub fn secret_file_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "secret file {} has mode {mode:04o}: group or others can access the master secret \
             (anyone who reads it can mint cookies); chmod 600 it",
            path.display()
        )
    })
}
