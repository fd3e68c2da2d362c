//! What the engine needs to know: the protected services, the cookie configuration, the server
//! parameters of the SYN+ACK, the strict mode, the auto mode and the abuse controls (SPEC 10).

use crate::abuse::{Budget, ClientLists, ClientPrefix};
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

// DEFAULT_FLOW_CACHE, DEFAULT_PROMOTED_CACHE, DEFAULT_BUDGET_PREFIXES: the default table sizes
// of strict mode and the budgets, from `bpf/lib/constants.def`.
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
    /// A backend that drops SYNs on a node with auto mode.
    #[error("a backend that drops SYNs cannot be combined with auto mode: {}", self.why())]
    DropSynsWithAuto,
    /// Auto mode's off rate is not below its on rate.
    #[error("auto mode: the off rate ({rate_off}/s) must be below the on rate ({rate_on}/s)")]
    AutoRates {
        /// SYNs/s at which cookies switch on.
        rate_on: u32,
        /// SYNs/s below which they switch off.
        rate_off: u32,
    },
    /// A budget's rate or burst is out of range.
    #[error("{which}: rate {rate}/s and burst {burst} must be 1..={max_rate} and 1..={max_burst}",
        max_rate = crate::abuse::MAX_RATE, max_burst = crate::abuse::MAX_BURST)]
    BudgetRange {
        /// Which budget (`reflection budget`, `node cap`, `flow budget`).
        which: &'static str,
        /// Its rate.
        rate: u32,
        /// Its burst.
        burst: u32,
    },
    /// A client prefix length is out of range.
    #[error("client prefix lengths /{v4} and /{v6} must be 0..=32 (IPv4) and 0..={max} (IPv6)",
        max = crate::abuse::MAX_PREFIX_V6)]
    ClientPrefix {
        /// IPv4 length.
        v4: u8,
        /// IPv6 length.
        v6: u8,
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
            // Auto mode passes SYNs to the kernel while the SYN rate is low: the backend would
            // drop every one of them.
            InvalidConfig::DropSynsWithAuto => {
                "auto mode hands the SYNs to the kernel while the SYN rate is low"
            }
            InvalidConfig::BudgetRange { .. } => "a budget's interval is kept in whole nanoseconds",
            InvalidConfig::ClientPrefix { .. } => "a budget key holds 64 bits of an IPv6 address",
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
    /// Capacity of the strict-mode flow cache's probation segment: flows whose handshake ACK
    /// validated and that have carried no data since.
    pub flow_cache: usize,
    /// Capacity of its protected segment: flows promoted once they carried data after their
    /// handshake; only promoted flows enter it, so new flows never evict them. 0: no promotion,
    /// one LRU for every flow.
    pub promoted_cache: usize,
    /// Strict mode: new flows each client prefix may put into the flow cache; `None`: no limit.
    pub flow_budget: Option<Budget>,
    /// Auto mode (edge): `None` answers every SYN with a cookie.
    pub auto: Option<AutoConfig>,
    /// Backend: drop SYNs to protected services instead of passing them to the kernel. Behind an
    /// edge (not in auto mode) every such SYN is answered there, so one that reaches the backend
    /// went around the edge; the price is that the backend no longer answers any itself.
    pub backend_drop_syns: bool,
    /// The reflection budget: SYN+ACKs per client prefix; `None`: no limit.
    pub budget: Option<Budget>,
    /// The cap on SYN+ACKs of the whole node; `None`: no cap.
    pub node_budget: Option<Budget>,
    /// The client prefix lengths of the budgets (reflection and new flows).
    pub client_prefix: ClientPrefix,
    /// Client prefixes each budget table holds (LRU).
    pub budget_prefixes: usize,
    /// The deny and allow lists.
    pub lists: ClientLists,
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
            promoted_cache: DEFAULT_PROMOTED_CACHE,
            flow_budget: Some(Budget::DEFAULT),
            auto: None,
            backend_drop_syns: false,
            budget: Some(Budget::DEFAULT),
            node_budget: None,
            client_prefix: ClientPrefix::default(),
            budget_prefixes: DEFAULT_BUDGET_PREFIXES,
            lists: ClientLists::default(),
        }
    }

    /// The rules no single field states: strict mode and auto mode exclude each other (checked
    /// first), so do auto mode and a backend that drops SYNs, and auto mode's thresholds must be
    /// consistent; then the budgets' ranges and the client prefix lengths. Every front end (the
    /// flags of `synwall edge|single`, the node's config file) and every node start checks them
    /// here.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if let Some(auto) = &self.auto {
            if self.strict {
                return Err(InvalidConfig::StrictWithAuto);
            }
            if self.backend_drop_syns {
                return Err(InvalidConfig::DropSynsWithAuto);
            }
            auto.validate()?;
        }
        for (which, b) in [
            ("reflection budget", self.budget),
            ("node cap", self.node_budget),
            ("flow budget", self.flow_budget),
        ] {
            if let Some(b) = b.filter(|b| !b.is_valid()) {
                return Err(InvalidConfig::BudgetRange {
                    which,
                    rate: b.rate,
                    burst: b.burst,
                });
            }
        }
        if !self.client_prefix.is_valid() {
            return Err(InvalidConfig::ClientPrefix {
                v4: self.client_prefix.v4,
                v6: self.client_prefix.v6,
            });
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
        // A backend that drops SYNs would drop those auto mode passes to the kernel.
        cfg.backend_drop_syns = true;
        assert_eq!(cfg.validate(), Err(InvalidConfig::DropSynsWithAuto));
        cfg.auto = None;
        assert_eq!(cfg.validate(), Ok(()), "drop_syns alone");
        cfg.backend_drop_syns = false;
        let msg = InvalidConfig::StrictWithAuto.to_string();
        assert!(msg.starts_with("strict mode cannot be combined with auto mode: strict drops"));
    }

    #[test]
    fn validate_budgets_and_client_prefixes() {
        let mut cfg = EngineConfig::new(ServiceSet::default());
        assert_eq!(
            cfg.budget,
            Some(Budget::DEFAULT),
            "the reflection budget is on"
        );
        assert_eq!(cfg.node_budget, None);
        cfg.node_budget = Some(Budget { rate: 0, burst: 5 });
        assert_eq!(
            cfg.validate(),
            Err(InvalidConfig::BudgetRange {
                which: "node cap",
                rate: 0,
                burst: 5
            })
        );
        cfg.node_budget = Some(Budget {
            rate: crate::abuse::MAX_RATE,
            burst: crate::abuse::MAX_BURST,
        });
        assert_eq!(cfg.validate(), Ok(()));
        cfg.flow_budget = Some(Budget { rate: 5, burst: 0 });
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("flow budget: rate 5/s"));
        cfg.flow_budget = None;
        cfg.client_prefix.v6 = 65;
        assert_eq!(
            cfg.validate(),
            Err(InvalidConfig::ClientPrefix { v4: 24, v6: 65 })
        );
    }
}
