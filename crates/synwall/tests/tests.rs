//! The integration tests of the synwall binary, one test binary: one module per concern (the
//! command-line tools, the daemon, the data path in network namespaces, the hostile-traffic
//! suite). `common` is the hostile suite's lab. The privileged tests need root (CI=true: fail,
//! else skip with a message).

mod abuse_netns;
mod auto_mode;
mod big_tcp_netns;
mod common;
mod cookie_cli;
mod daemon_cli;
mod daemon_netns;
mod dataplane_cli;
mod e2e_netns;
mod holes_netns;
mod hostile_netns;
mod install_script;
mod jumbo_netns;
mod metrics_status;
mod replay_analyze;
mod salts_netns;
mod status_json_netns;
mod troubleshoot_netns;
