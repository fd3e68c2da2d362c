//! Argument types shared by subcommands: the master-secret file and clocks.

use anyhow::Result;
use std::time::{SystemTime, UNIX_EPOCH};

/// The master-secret file format lives with the node config (one parser for flags and files).
pub use synwall_config::{parse_secret, read_secret_file};

/// Seconds and milliseconds since the Unix epoch, now.
pub fn now_unix() -> (u64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let s = parse_secret(format!("{hex64}\n").as_bytes()).unwrap();
        assert_eq!(s[1], 0x11);
        assert_eq!(parse_secret(&[7u8; 32]).unwrap(), [7u8; 32]);
        assert!(parse_secret(b"abcd").is_err());
        assert!(parse_secret(&[7u8; 33]).is_err());
        let err = parse_secret(&hex64.as_bytes()[..62])
            .unwrap_err()
            .to_string();
        assert!(err.contains("62 hex characters"), "{err}");
    }
}

/// Parse `PREFIX:PORTS` for clap (the one parser, in `synwall_engine::services`).
pub fn parse_service(s: &str) -> std::result::Result<synwall_engine::Service, String> {
    s.parse()
        .map_err(|e: synwall_engine::services::ServiceError| e.to_string())
}

/// The flags every data-path command shares (replay, edge, backend, single): services, the master
/// secret and the epoch length. Parsed here once.
#[derive(clap::Args, Clone, Debug)]
pub struct DataPathArgs {
    /// A protected service, PREFIX:PORTS (e.g. 10.0.0.0/24:80,443 or [2001:db8::/64]:8000-8100).
    #[arg(long = "service", value_name = "PREFIX:PORTS", required = true, value_parser = parse_service)]
    pub services: Vec<synwall_engine::Service>,
    /// The master secret: 32 raw bytes or 64 hex characters.
    #[arg(long, value_name = "FILE")]
    pub secret_file: std::path::PathBuf,
    /// A second master secret that validates only (a staged secret rollout: the new secret while
    /// it is rolled out, then the old one until every node issues the new one's cookies).
    #[arg(long, value_name = "FILE")]
    pub accepted_secret_file: Option<std::path::PathBuf>,
    /// Epoch length in seconds (salts rotate every epoch; a cookie lives 1-2 epochs).
    #[arg(long, default_value_t = synwall_cookie::synwall_v1::DEFAULT_EPOCH_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=synwall_config::MAX_EPOCH_SECONDS))]
    pub epoch_seconds: u64,
}

impl DataPathArgs {
    /// Read the master secret.
    pub fn master(&self) -> Result<synwall_cookie::synwall_v1::MasterSecret> {
        Ok(synwall_cookie::synwall_v1::MasterSecret(read_secret_file(
            &self.secret_file,
        )?))
    }

    /// Read the master secrets: the current one and, with `--accepted-secret-file`, the accepted
    /// one (which must be another secret).
    pub fn secrets(&self) -> Result<crate::rotation::Secrets> {
        let current = self.master()?;
        let accepted = match &self.accepted_secret_file {
            Some(p) => {
                let a = synwall_cookie::synwall_v1::MasterSecret(read_secret_file(p)?);
                anyhow::ensure!(
                    a != current,
                    "--accepted-secret-file {} holds the same secret as --secret-file: the \
                     accepted secret is a second one",
                    p.display()
                );
                Some(a)
            }
            None => None,
        };
        Ok(crate::rotation::Secrets { current, accepted })
    }
}
