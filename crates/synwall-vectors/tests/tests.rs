//! The integration tests of synwall-vectors, one binary: one module per concern.

mod vectors;
