//! The master secret: 32 raw bytes or 64 hex characters, in a file or in a systemd credential.
//!
//! A key that names a secret (`node.secret_file`) holds either a path or `%d/NAME`: the credential
//! `NAME` that systemd hands the unit (`LoadCredential=NAME:PATH`, `LoadCredentialEncrypted=`,
//! `SetCredential=`) in `$CREDENTIALS_DIRECTORY`, which is what `%d` means in a unit file too.
//! [`SecretSource`] is that choice, and [`read_secret`] the one way every such key is read.

use std::path::{Path, PathBuf};

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

/// What names the credentials directory (`%d` in a unit file): set by systemd for a unit with
/// credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where a configured secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, by path.
    File(PathBuf),
    /// A systemd credential of the unit, by name (`%d/NAME` in the config).
    Credential(String),
}

impl SecretSource {
    /// What a config value says: `%d/NAME` is credential `NAME`, anything else a path. A `%`
    /// anywhere else is refused (it would be a systemd specifier synwall does not expand), and
    /// so is a name systemd would not accept for a credential.
    pub fn parse(configured: &Path) -> Result<SecretSource, SecretError> {
        let text = configured.to_string_lossy();
        let Some(name) = text.strip_prefix("%d/") else {
            if text.contains('%') {
                return Err(SecretError(format!(
                    "{text:?}: `%` is only understood as a leading %d/ (the systemd credential \
                     that follows, e.g. \"%d/synwall-secret\")"
                )));
            }
            return Ok(SecretSource::File(configured.to_path_buf()));
        };
        // systemd's rule for a credential name: a valid file name.
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('%')
            || name.len() > 255
        {
            return Err(SecretError(format!(
                "{text:?}: {name:?} is not a credential name (a file name: not empty, no `/`, at \
                 most 255 bytes)"
            )));
        }
        Ok(SecretSource::Credential(name.to_string()))
    }

    /// The file to read, with `$CREDENTIALS_DIRECTORY` from the environment.
    pub fn path(&self) -> Result<PathBuf, SecretError> {
        self.path_in(
            std::env::var_os(CREDENTIALS_DIRECTORY)
                .map(PathBuf::from)
                .as_deref(),
        )
    }

    /// The file to read, with `credentials` as the credentials directory (`None`: not set).
    pub fn path_in(&self, credentials: Option<&Path>) -> Result<PathBuf, SecretError> {
        match (self, credentials) {
            (SecretSource::File(p), _) => Ok(p.clone()),
            (SecretSource::Credential(n), Some(dir)) if !dir.as_os_str().is_empty() => {
                Ok(dir.join(n))
            }
            (SecretSource::Credential(n), _) => Err(SecretError(format!(
                "{self} is systemd credential {n:?}, but ${CREDENTIALS_DIRECTORY} is not set: \
                 systemd sets it for a unit with LoadCredential={n}:/PATH/OF/THE/SECRET (or \
                 LoadCredentialEncrypted=, SetCredential=); outside such a unit, name the file"
            ))),
        }
    }

    /// Read and parse it.
    pub fn read(&self) -> Result<[u8; 32], SecretError> {
        let path = self.path()?;
        match self {
            SecretSource::File(_) => read_secret_file(&path),
            SecretSource::Credential(n) => {
                let bytes = std::fs::read(&path).map_err(|e| {
                    SecretError(format!(
                        "cannot read systemd credential {n:?} ({}): {e}{}",
                        path.display(),
                        if e.kind() == std::io::ErrorKind::NotFound {
                            format!(" (the unit needs LoadCredential={n}:/PATH/OF/THE/SECRET)")
                        } else {
                            String::new()
                        }
                    ))
                })?;
                parse_secret(&bytes)
                    .map_err(|e| SecretError(format!("systemd credential {n:?}: {e}")))
            }
        }
    }

    /// A warning about who can read it: for a file, [`secret_file_warning`]. (A credential is
    /// systemd's copy, private to the unit.)
    pub fn warning(&self) -> Option<String> {
        match self {
            SecretSource::File(p) => secret_file_warning(p),
            SecretSource::Credential(_) => None,
        }
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "{}", p.display()),
            SecretSource::Credential(n) => write!(f, "%d/{n}"),
        }
    }
}

/// Read the secret a config value names (a path, or `%d/NAME` for a systemd credential): the way
/// every key naming a secret is read.
pub fn read_secret(configured: &Path) -> Result<[u8; 32], SecretError> {
    SecretSource::parse(configured)?.read()
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
