//! The integration tests of synwall-bench (the synwall-lab binary), one binary: one module per
//! concern.

mod bgp;
mod lab_cli;
mod smoke;
