//! The integration tests of synwall-engine, one binary: one module per concern.

mod abuse;
mod common;
mod decisions;
mod holes;
mod malformed;
mod synack;
