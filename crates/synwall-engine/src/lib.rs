//! synwall's reference data path: given one frame, the configuration and the salts, return exactly
//! what the XDP (edge) and tc (backend) programs must do, with the counter they increment. It is the
//! oracle the BPF programs are tested against and the engine of `synwall replay` (whose parser
//! `synwall analyze` borrows).
//!
//! One path per packet, the same names as the C: [`parse`] -> [`engine`] (decide) -> [`synack`]
//! (build the reply). Counters come from `bpf/lib/counters.def` ([`counters`]).

pub mod auto;
pub mod config;
pub mod counters;
pub mod engine;
pub mod parse;
pub mod salts;
pub mod services;
pub mod synack;

pub use auto::AutoState;
pub use config::{AutoConfig, EngineConfig, InvalidConfig, ServerParams};
pub use counters::{Counter, Counters};
pub use engine::{
    BackendDecision, BackendVerdict, Decision, Engine, ReqAttrs, Skb, SocketState, Verdict,
};
pub use salts::{SaltEntry, SaltRing, Salts, Validation};
pub use services::{Service, ServiceSet};
