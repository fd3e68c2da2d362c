//! The integration tests of synwall-bpf, one binary: one module per concern. The privileged ones
//! need root and BPF (CI=true: fail, else skip with a message).

mod attach;
mod auto_mode;
mod backend;
mod differential;
mod fixtures;
mod lists_reload;
mod services_reload;
