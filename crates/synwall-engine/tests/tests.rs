//! The integration tests of synwall-engine, one binary: one module per concern.

mod common;
mod decisions;
mod holes;
mod malformed;
mod synack;
