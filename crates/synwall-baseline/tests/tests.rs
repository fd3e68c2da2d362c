//! The integration tests of synwall-baseline, one binary: one module per concern. Those that load
//! programs need root (skip elsewhere, fail under CI=true).

mod per_packet;
mod programs;
mod real_listener;
