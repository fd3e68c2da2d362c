//! The integration tests of synwall-cookie, one binary: one module per concern.

mod properties;
