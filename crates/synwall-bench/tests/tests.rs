//! The integration tests of synwall-bench (the synwall-lab binary), one binary: one module per
//! concern.

mod bgp;
mod charts;
mod lab_cli;
mod livegen;
mod smoke;
