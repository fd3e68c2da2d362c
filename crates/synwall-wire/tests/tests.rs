//! The integration tests of synwall-wire, one binary: one module per concern.

mod views;
