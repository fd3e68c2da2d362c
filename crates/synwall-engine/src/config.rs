//! What the engine needs to know: the protected services, the cookie configuration, the server
//! parameters of the SYN+ACK, and the strict mode.

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
        }
    }
}
