//! `/metrics`: a [`Snapshot`] as OpenMetrics text, and the small HTTP server that exports it.
//!
//! The registry is rebuilt for every scrape from one snapshot: the counters live in BPF maps, not
//! here, so there is no state to keep between scrapes and every number in one response comes from
//! the same reading.

use crate::snapshot::AutoState;
use crate::snapshot::{Role, Snapshot};
use anyhow::{anyhow, Context as _};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use synwall_engine::Counter;

/// What `/metrics` answers with (OpenMetrics 1.0, as prometheus-client encodes it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn role_label(role: Role) -> Labels {
    vec![("role", role.as_str().to_string())]
}

/// prometheus-client writes label values as given; OpenMetrics needs backslashes, `"` and newlines
/// escaped.
/// The node name comes from the config, so escape rather than trust it.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One snapshot as a collector: families and samples come out in a fixed order (counters in
/// `counters.def` order, programs in snapshot order), so two scrapes of equal readings are equal
/// text; the `Family` metric type would order its samples by hash.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

impl SnapshotCollector {
    /// Programs merged per role (two programs of one role add up, as one expects of a per-role
    /// total), in order of first appearance.
    fn per_role(&self) -> Vec<(Role, synwall_engine::Counters)> {
        let mut out: Vec<(Role, synwall_engine::Counters)> = Vec::new();
        for p in &self.0.programs {
            match out.iter_mut().find(|(r, _)| *r == p.role) {
                Some((_, sum)) => {
                    for (c, v) in p.counters.iter() {
                        sum.set(c, sum.get(c).saturating_add(v));
                    }
                }
                None => out.push((p.role, p.counters.clone())),
            }
        }
        out
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let roles = self.per_role();
        for c in Counter::ALL {
            let mut m = enc.encode_descriptor(c.name(), c.help(), None, MetricType::Counter)?;
            for (role, counters) in &roles {
                let labels = role_label(*role);
                ConstCounter::new(counters.get(c)).encode(m.encode_family(&labels)?)?;
            }
        }

        let mut gauge = |name: &str, help: &str, v: i64| -> Result<(), std::fmt::Error> {
            ConstGauge::new(v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        gauge(
            "epoch",
            "Current salt epoch (floor(unix_time / epoch_seconds))",
            clamp(s.epoch),
        )?;
        gauge(
            "epoch_seconds",
            "Length of a salt epoch in seconds",
            clamp(s.epoch_seconds),
        )?;
        gauge(
            "strict",
            "1 when the edge runs in strict mode (only validated flows are forwarded)",
            i64::from(s.strict),
        )?;
        gauge(
            "healthy",
            "1 when the node is fit to receive traffic (programs attached, daemon alive, salts for \
             this epoch and the next, secret files readable; /healthz says why not)",
            i64::from(s.health.healthy),
        )?;
        gauge(
            "daemon_alive",
            "1 while the daemon's heartbeat in the maps is fresh (it writes one every 25 ms)",
            i64::from(s.daemon_alive()),
        )?;
        if let Some((_, ms)) = s.heartbeat() {
            ConstGauge::new(s.taken_ms.saturating_sub(ms) as f64 / 1000.0).encode(
                enc.encode_descriptor(
                    "daemon_heartbeat_age_seconds",
                    "Seconds since the daemon last wrote its heartbeat into the maps",
                    None,
                    MetricType::Gauge,
                )?,
            )?;
        }

        type SaltField = fn(&Snapshot, &crate::snapshot::SaltView) -> i64;
        let salt_gauges: [(&str, &str, SaltField); 4] = [
            (
                "salt_epoch",
                "The epoch whose salt the program uses now (the edge issues cookies in it, the \
                 backend validates from it)",
                |_, v| clamp(v.live_epoch),
            ),
            (
                "salts_stale",
                "1 when the program's salt ring holds no salt for the epoch it is in: it passes \
                 SYNs (and ACKs it cannot validate) to the kernel (fail-safe)",
                |_, v| i64::from(v.stale),
            ),
            (
                "salts_remaining_seconds",
                "Seconds until the program's salt ring runs out (the daemon writes it \
                 node.salts_ahead_seconds ahead); 0 once it has",
                |s, v| {
                    clamp(
                        v.runs_out_ms
                            .map_or(0, |end| end.saturating_sub(s.taken_ms))
                            .saturating_add(999)
                            / 1000,
                    )
                },
            ),
            (
                "accepted_secret",
                "1 while an accepted master secret validates beside the current one (a staged \
                 secret rollout, SPEC 2a)",
                |_, v| i64::from(v.accepted_secret),
            ),
        ];
        for (name, help, field) in salt_gauges {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &s.programs {
                ConstGauge::new(field(s, &p.salts))
                    .encode(m.encode_family(&role_label(p.role))?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "salt_key_info",
            "Always 1; labels name the key ids of the salts the program uses now (a MAC under \
             each salt, never the salt): key of the current secret, accepted_key of the \
             accepted one (empty without one). Nodes with the same secret show the same key",
            None,
            MetricType::Gauge,
        )?;
        for p in &s.programs {
            let mut labels = role_label(p.role);
            labels.push(("key", p.salts.key.clone().unwrap_or_default()));
            labels.push((
                "accepted_key",
                p.salts.accepted_key.clone().unwrap_or_default(),
            ));
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }

        type AutoField = fn(&AutoState) -> i64;
        let auto: [(&str, &str, AutoField); 4] = [
            (
                "auto_cookies_on",
                "Auto mode: 1 while cookies are being issued, 0 while SYNs pass to the kernel",
                |a| i64::from(a.cookies_on),
            ),
            (
                "auto_syn_rate",
                "Auto mode: SYNs per second to protected services as last measured by the program",
                |a| clamp(a.syn_rate),
            ),
            (
                "auto_syn_rate_on",
                "Auto mode: SYN rate per second above which cookies are switched on",
                |a| clamp(a.syn_rate_on),
            ),
            (
                "auto_syn_rate_off",
                "Auto mode: SYN rate per second below which cookies are switched off again",
                |a| clamp(a.syn_rate_off),
            ),
        ];
        for (name, help, field) in auto {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &s.programs {
                if let Some(a) = &p.auto {
                    let labels = role_label(p.role);
                    ConstGauge::new(field(a)).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "info",
            "Always 1; labels name the node and the synwall version",
            None,
            MetricType::Gauge,
        )?;
        let labels: Labels = vec![
            ("node", escape_label(&s.node)),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
        ];
        ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;

        ConstGauge::new(s.taken_ms as f64 / 1000.0).encode(enc.encode_descriptor(
            "snapshot_timestamp_seconds",
            "When the counters in this response were read, seconds since the Unix epoch",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// Encode one snapshot. Every counter of every program appears (zeros included) so that rates
/// start from a known zero instead of appearing when the first packet is counted.
pub fn render(s: &Snapshot) -> String {
    let mut reg = Registry::with_prefix("synwall");
    reg.register_collector(Box::new(SnapshotCollector(s.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail; an error here would be a bug in the encoder.
    encode(&mut out, &reg).expect("encoding metrics into a String");
    out
}

/// Where the server gets its numbers from: called once per scrape.
pub type Source = Arc<dyn Fn() -> anyhow::Result<Snapshot> + Send + Sync>;

/// The `/metrics` HTTP server. It runs on its own thread until dropped; when `drop` returns the
/// port is closed (a new server can bind it at once, e.g. after a reload).
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    // A second handle on tiny_http's listening socket, to close it synchronously on drop: tiny_http
    // closes its own only later, from its accept thread.
    listener: std::net::TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // shutdown() on a listening socket stops it listening (Linux): new connections are
        // refused from here on and tiny_http's blocked accept() returns an error, ending its thread.
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Could `synwall run` listen on `addr`? Binds it as [`serve`] does and lets go at once. An
/// address in use is no problem when `node_pid` (the node's own running daemon) probably holds it:
/// `Ok` with a warning then. For `synwall check-config`; `run` finds out by binding.
pub fn check_addr(addr: SocketAddr, node_pid: Option<i32>) -> Result<Option<String>, String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match node_pid {
            Some(pid) => Ok(Some(format!(
                "metrics address {addr} is in use, presumably by this node's running synwall \
                 (pid {pid}); a second `synwall run` of it could not listen there"
            ))),
            None => Err(format!(
                "cannot listen on {addr}: another program listens there (choose another \
                 address, or \"\" to disable metrics)"
            )),
        },
        Err(e) => Err(format!("cannot listen on {addr}: {e}")),
    }
}

/// Bind `addr` and answer `GET /metrics` from `source` on a background thread.
pub fn serve(addr: SocketAddr, source: Source) -> anyhow::Result<MetricsServer> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("metrics: cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("metrics: address of the listener on {addr}"))?;
    let handle = listener
        .try_clone()
        .with_context(|| format!("metrics: listener on {addr}"))?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| anyhow!("metrics: cannot serve on {addr}: {e}"))?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let server = Arc::clone(&server);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("synwall-metrics".into())
            .spawn(move || serve_loop(&server, &stop, &*source))
            .context("metrics: spawning the server thread")?
    };
    tracing::debug!(addr = %bound, "metrics: serving /metrics");
    Ok(MetricsServer {
        server,
        listener: handle,
        stop,
        thread: Some(thread),
        addr: bound,
    })
}

fn serve_loop(
    server: &tiny_http::Server,
    stop: &AtomicBool,
    source: &(dyn Fn() -> anyhow::Result<Snapshot> + Send + Sync),
) {
    loop {
        match server.recv() {
            Ok(rq) => {
                let resp = respond(rq.method(), rq.url(), source);
                if let Err(e) = rq.respond(resp) {
                    tracing::debug!("metrics: writing a response: {e}");
                }
            }
            Err(e) => {
                if !stop.load(Ordering::SeqCst) {
                    // tiny_http reports an accept() failure once and stops accepting: say so
                    // rather than serve nothing silently.
                    tracing::error!("metrics: the listener failed, /metrics is down: {e}");
                }
                return;
            }
        }
    }
}

type Resp = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn text(code: u16, content_type: &str, body: String) -> Resp {
    let header = tiny_http::Header::from_bytes("Content-Type", content_type)
        .expect("static header is valid");
    tiny_http::Response::from_string(body)
        .with_status_code(code)
        .with_header(header)
}

fn respond(
    method: &tiny_http::Method,
    url: &str,
    source: &(dyn Fn() -> anyhow::Result<Snapshot> + Send + Sync),
) -> Resp {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let path = url.split('?').next().unwrap_or(url);
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return text(405, PLAIN, "only GET is supported\n".into());
    }
    match path {
        "/metrics" => match source() {
            Ok(s) => text(200, CONTENT_TYPE, render(&s)),
            Err(e) => {
                tracing::warn!("metrics: reading counters: {e:#}");
                text(
                    500,
                    PLAIN,
                    format!("synwall: reading counters failed: {e:#}\n"),
                )
            }
        },
        // Fit to receive traffic: 200 `ok`, or 503 and one line of reason.
        "/healthz" => match source() {
            Ok(s) if s.health.healthy => text(200, PLAIN, "ok\n".into()),
            Ok(s) => text(503, PLAIN, format!("{}\n", s.health.line())),
            Err(e) => text(
                503,
                PLAIN,
                format!("unhealthy: cannot read the node's maps: {e:#}\n"),
            ),
        },
        "/" => text(
            200,
            PLAIN,
            "synwall exporter: counters and state are at /metrics (OpenMetrics text), health at \
             /healthz\n"
                .into(),
        ),
        _ => text(
            404,
            PLAIN,
            format!("not found: {path} (try /metrics or /healthz)\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn snapshot() -> Snapshot {
        let mut s = crate::snapshot::sample("lab\\1", 1_700_000_000_250, 1234, 7, 99);
        s.strict = true;
        s
    }

    /// Sample lines (name{labels} value) of the text, and every family's HELP and TYPE.
    fn parse(text: &str) -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
        let (mut samples, mut helps, mut types) = (vec![], vec![], vec![]);
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("# HELP ") {
                helps.push(r.split(' ').next().unwrap().to_string());
            } else if let Some(r) = line.strip_prefix("# TYPE ") {
                types.push(r.split(' ').next().unwrap().to_string());
            } else if line != "# EOF" {
                let (k, v) = line.rsplit_once(' ').expect("sample has a value");
                samples.push((k.to_string(), v.to_string()));
            }
        }
        (samples, helps, types)
    }

    #[test]
    fn every_counter_of_every_role_with_help() {
        let s = snapshot();
        let text = render(&s);
        assert_eq!(text, render(&s), "the same reading renders the same text");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
        let (samples, helps, types) = parse(&text);
        assert_eq!(helps, types, "one HELP and one TYPE per family, same order");
        let value = |k: &str| {
            samples
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no sample {k} in\n{text}"))
        };
        for c in Counter::ALL {
            let fam = format!("synwall_{}", c.name());
            let help = format!("# HELP {fam} {}\n", c.help());
            assert!(text.contains(&help), "missing {help}");
            assert!(text.contains(&format!("# TYPE {fam} counter")));
            for p in &s.programs {
                let k = format!("{fam}_total{{role=\"{}\"}}", p.role.as_str());
                assert_eq!(value(&k), p.counters.get(c).to_string(), "{k}");
            }
        }
        assert_eq!(value("synwall_syn_answered_total{role=\"edge\"}"), "1234");
        assert_eq!(value("synwall_syn_answered_total{role=\"backend\"}"), "0");
        assert_eq!(value("synwall_epoch"), "28333333");
        assert_eq!(value("synwall_epoch_seconds"), "60");
        assert_eq!(value("synwall_strict"), "1");
        assert_eq!(value("synwall_healthy"), "1");
        assert_eq!(value("synwall_daemon_alive"), "1");
        assert_eq!(value("synwall_daemon_heartbeat_age_seconds"), "0.01");
        let edge_salts = &s.programs[0].salts;
        assert_eq!(value("synwall_salt_epoch{role=\"edge\"}"), "28333333");
        assert_eq!(value("synwall_salts_stale{role=\"backend\"}"), "0");
        assert_eq!(value("synwall_accepted_secret{role=\"edge\"}"), "0");
        // 1700000000.25 s into epoch 28333333; epochs up to 28333343 are written: the backend
        // runs out at 1700000640 s.
        assert_eq!(
            value("synwall_salts_remaining_seconds{role=\"backend\"}"),
            "640"
        );
        let info = format!(
            "synwall_salt_key_info{{role=\"edge\",key=\"{}\",accepted_key=\"\"}}",
            edge_salts.key.as_deref().unwrap()
        );
        assert_eq!(value(&info), "1");
        assert_eq!(value("synwall_auto_cookies_on{role=\"edge\"}"), "1");
        assert_eq!(value("synwall_auto_syn_rate{role=\"edge\"}"), "15000");
        assert_eq!(value("synwall_auto_syn_rate_on{role=\"edge\"}"), "10000");
        assert_eq!(value("synwall_auto_syn_rate_off{role=\"edge\"}"), "2000");
        assert!(!text.contains("synwall_auto_syn_rate{role=\"backend\"}"));
        let info = format!(
            "synwall_info{{node=\"lab\\\\1\",version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(value(&info), "1");
        assert_eq!(
            value("synwall_snapshot_timestamp_seconds")
                .parse::<f64>()
                .unwrap(),
            1_700_000_000.25
        );
        // Every sample belongs to a family that has HELP.
        for (k, _) in &samples {
            let name = k.split('{').next().unwrap();
            assert!(
                helps
                    .iter()
                    .any(|h| name == h || name.strip_prefix(h.as_str()) == Some("_total")),
                "{name} has no HELP"
            );
        }
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            t,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        t.read_to_string(&mut resp).unwrap();
        let (head, body) = resp.split_once("\r\n\r\n").expect("headers end");
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_string(), body.to_string())
    }

    #[test]
    fn http_server_answers_over_tcp() {
        let fail = Arc::new(AtomicBool::new(false));
        let src: Source = {
            let fail = Arc::clone(&fail);
            Arc::new(move || {
                if fail.load(Ordering::SeqCst) {
                    anyhow::bail!("pinned maps are gone")
                }
                Ok(snapshot())
            })
        };
        let srv = serve("127.0.0.1:0".parse().unwrap(), src).unwrap();
        let addr = srv.local_addr();
        assert_ne!(addr.port(), 0);

        let (code, head, body) = get(addr, "/metrics");
        assert_eq!(code, 200, "{head}");
        assert!(head.contains(CONTENT_TYPE), "{head}");
        assert_eq!(body, render(&snapshot()));

        let (code, _, body) = get(addr, "/");
        assert_eq!(code, 200);
        assert!(body.contains("/metrics"));

        let (code, _, body) = get(addr, "/nope");
        assert_eq!(code, 404);
        assert!(body.contains("/nope"));

        fail.store(true, Ordering::SeqCst);
        let (code, _, body) = get(addr, "/metrics");
        assert_eq!(code, 500);
        assert!(body.contains("pinned maps are gone"), "{body}");

        // Dropping stops the server: the port no longer accepts, and can be bound again at
        // once (a reload that keeps the address).
        drop(srv);
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening after drop"
        );
        let again = serve(addr, Arc::new(|| Ok(snapshot()))).expect("rebind after drop");
        assert_eq!(get(again.local_addr(), "/metrics").0, 200);
    }

    #[test]
    fn bind_failure_names_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let src: Source = Arc::new(|| anyhow::bail!("unused"));
        let err = serve(addr, src).err().expect("port in use must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains(&addr.to_string()), "{msg}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
    }
}
