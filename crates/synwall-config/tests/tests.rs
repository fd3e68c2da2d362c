//! The integration tests of synwall-config, one binary: one module per concern.

mod config;
