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

/// Default capacity of the strict-mode flow cache.
pub const DEFAULT_FLOW_CACHE: usize = 65_536;

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
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_off >= self.rate_on {
            return Err(format!(
                "auto mode: the off rate ({}/s) must be below the on rate ({}/s)",
                self.rate_off, self.rate_on
            ));
        }
        Ok(())
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
}
