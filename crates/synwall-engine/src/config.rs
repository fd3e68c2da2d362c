//! What the engine needs to know: the protected services, the cookie configuration, the server
//! parameters of the SYN+ACK, the strict mode and the auto mode.

use crate::services::ServiceSet;
use synwall_cookie::synwall_v1;

/// Server-side values the SYN+ACK advertises (SPEC section 7). The window scale must equal the
/// backends' `rcv_wscale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerParams {
    /// MSS option for IPv4.
    pub mss_v4: u16,
    /// MSS option for IPv6.
    pub mss_v6: u16,
    /// Window-scale shift (0..=14).
    pub wscale: u8,
    /// TCP window.
    pub window: u16,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
}

impl Default for ServerParams {
    fn default() -> Self {
        ServerParams {
            mss_v4: 1460,
            mss_v6: 1440,
            wscale: 7,
            window: 64240,
            ttl: 64,
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/constants_config.rs"));

/// Auto mode (edge and single node): SYNs pass to the kernel while the SYN rate is low and are
/// answered with cookies while it is high, with hysteresis. Rates are SYNs per second to protected
/// services, measured over windows of at least 100 ms ([`crate::auto::AutoState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoConfig {
    /// Cookies switch on when a window's rate is at least this.
    pub rate_on: u32,
    /// Cookies switch off when a window's rate is below this (must be below `rate_on`) ...
    pub rate_off: u32,
    /// ... and no window reached `rate_off` for this many milliseconds.
    pub hold_ms: u32,
}

impl AutoConfig {
    /// Check the thresholds: `rate_off < rate_on`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.rate_off >= self.rate_on {
            return Err(InvalidConfig::AutoRates {
                rate_on: self.rate_on,
                rate_off: self.rate_off,
            });
        }
        Ok(())
    }
}

/// A configuration the data path cannot run ([`EngineConfig::validate`]). Front ends name the
/// settings involved in their own terms (flags, config keys) and add [`InvalidConfig::why`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    /// Strict mode with auto mode.
    #[error("strict mode cannot be combined with auto mode: {}", self.why())]
    StrictWithAuto,
    /// Auto mode's off rate is not below its on rate.
    #[error("auto mode: the off rate ({rate_off}/s) must be below the on rate ({rate_on}/s)")]
    AutoRates {
        /// SYNs/s at which cookies switch on.
        rate_on: u32,
        /// SYNs/s below which they switch off.
        rate_off: u32,
    },
}

impl InvalidConfig {
    /// Why the rule exists.
    pub fn why(&self) -> &'static str {
        match self {
            // Strict mode drops every ACK that carries no valid cookie, and the handshakes the
            // kernel answers while auto mode has cookies off carry none.
            InvalidConfig::StrictWithAuto => {
                "strict drops the ACKs of handshakes the kernel made while cookies were off"
            }
            InvalidConfig::AutoRates { .. } => "or cookies would flap on and off",
        }
    }
}

/// The engine's configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Protected services.
    pub services: ServiceSet,
    /// Cookie options and MSS tables.
    pub cookie: synwall_v1::Config,
    /// SYN+ACK values.
    pub server: ServerParams,
    /// Strict mode: the edge forwards only flows whose handshake ACK it validated.
    pub strict: bool,
    /// Capacity of the strict-mode flow cache.
    pub flow_cache: usize,
    /// Auto mode (edge): `None` answers every SYN with a cookie.
    pub auto: Option<AutoConfig>,
}

impl EngineConfig {
    /// A configuration with defaults for everything but the services.
    pub fn new(services: ServiceSet) -> Self {
        EngineConfig {
            services,
            cookie: synwall_v1::Config::default(),
            server: ServerParams::default(),
            strict: false,
            flow_cache: DEFAULT_FLOW_CACHE,
            auto: None,
        }
    }

    /// The rules no single field states: strict mode and auto mode exclude each other (checked
    /// first), and auto mode's thresholds must be consistent. Every front end (the flags of
    /// `synwall edge|single`, the node's config file) and every node start checks them here.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if let Some(auto) = &self.auto {
            if self.strict {
                return Err(InvalidConfig::StrictWithAuto);
            }
            auto.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_strict_auto_and_thresholds() {
        let auto = |rate_on, rate_off| AutoConfig {
            rate_on,
            rate_off,
            hold_ms: 1000,
        };
        let mut cfg = EngineConfig::new(ServiceSet::default());
        assert_eq!(cfg.validate(), Ok(()));
        cfg.strict = true;
        assert_eq!(cfg.validate(), Ok(()), "strict alone");
        cfg.auto = Some(auto(100, 10));
        assert_eq!(cfg.validate(), Err(InvalidConfig::StrictWithAuto));
        // The combination is reported even when the thresholds are wrong too.
        cfg.auto = Some(auto(10, 10));
        assert_eq!(cfg.validate(), Err(InvalidConfig::StrictWithAuto));
        cfg.strict = false;
        assert_eq!(
            cfg.validate(),
            Err(InvalidConfig::AutoRates {
                rate_on: 10,
                rate_off: 10
            })
        );
        cfg.auto = Some(auto(100, 10));
        assert_eq!(cfg.validate(), Ok(()), "auto alone");
        let msg = InvalidConfig::StrictWithAuto.to_string();
        assert!(msg.starts_with("strict mode cannot be combined with auto mode: strict drops"));
    }
}
