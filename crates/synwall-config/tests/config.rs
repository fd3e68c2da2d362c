//! The node config file: the shipped example, every class of bad input (key and line checked
//! against the case text), defaults, the engine mapping, reload classification and the secret file.

use std::path::PathBuf;
use synwall_config::{NodeConfig, Roles, XdpFallback, XdpMode};

fn dist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/synwall.toml")
}

/// Every key of the schema, as (section, dotted key), from the defaults serialized by toml: a new
/// field shows up here without anyone listing it. Sections nest (`[edge.budget]`): a nested
/// section is a section of its own, its keys are listed under it.
fn schema_keys() -> Vec<(String, String)> {
    fn walk(section: &str, t: &toml::Table, out: &mut Vec<(String, String)>) {
        for (key, v) in t {
            let path = format!("{section}.{key}");
            match v.as_table() {
                Some(inner) => walk(&path, inner, out),
                None => out.push((section.to_string(), path)),
            }
        }
    }
    let v = toml::Value::try_from(NodeConfig::default()).unwrap();
    let mut out = Vec::new();
    for (section, t) in v.as_table().unwrap() {
        walk(
            section,
            t.as_table().expect("every top-level key is a section"),
            &mut out,
        );
    }
    out
}

const MINIMAL: &str =
    "[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n";

#[test]
fn dist_example_is_valid_documented_and_all_defaults() {
    let text = std::fs::read_to_string(dist()).unwrap();
    let loaded = NodeConfig::load(&dist()).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = loaded.config.clone();
    // The example values the file says are examples.
    assert_eq!(cfg.edge.interfaces, ["eth0"]);
    assert_eq!(cfg.backend.interfaces, ["eth0"]);
    assert_eq!(
        cfg.services.protect,
        ["192.0.2.10/32:80,443", "[2001:db8::10/128]:443"]
    );
    // Everything else is the default.
    cfg.edge.interfaces.clear();
    cfg.backend.interfaces.clear();
    cfg.services.protect.clear();
    assert_eq!(cfg, NodeConfig::default());

    let lines: Vec<&str> = text.lines().collect();
    let documented = |line: usize| {
        let above = lines[line - 2].trim_start();
        above.starts_with('#')
    };
    let keys = schema_keys();
    assert!(keys.len() >= 29 + 14, "{keys:?}");
    let mut sections: Vec<&String> = keys.iter().map(|(s, _)| s).collect();
    sections.dedup();
    assert!(sections.iter().any(|s| *s == "edge.budget"), "{sections:?}");
    for s in sections {
        let l = loaded
            .line_of(s)
            .unwrap_or_else(|| panic!("[{s}] missing from dist/synwall.toml"));
        assert!(documented(l), "[{s}] (line {l}) has no comment above it");
        assert_eq!(lines[l - 1].trim(), format!("[{s}]"), "line {l}");
    }
    for (_, key) in &keys {
        let l = loaded
            .line_of(key)
            .unwrap_or_else(|| panic!("{key} missing from dist/synwall.toml"));
        assert!(documented(l), "{key} (line {l}) has no comment above it");
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            lines[l - 1].trim_start().starts_with(leaf),
            "{key}: line {l}"
        );
    }
}

#[test]
fn minimal_config_takes_every_default() {
    let loaded = NodeConfig::parse(MINIMAL, "min.toml").unwrap();
    let mut expected = NodeConfig::default();
    expected.services.protect = vec!["10.0.0.0/24:80".into()];
    expected.edge.interfaces = vec!["eth0".into()];
    assert_eq!(loaded.config, expected);
    // The defaults are the engine's and the cookie's own.
    let d = NodeConfig::default();
    assert_eq!(
        d.node.epoch_seconds,
        synwall_cookie::synwall_v1::DEFAULT_EPOCH_SECONDS
    );
    assert_eq!(
        d.edge.flow_cache,
        synwall_engine::config::DEFAULT_FLOW_CACHE
    );
    assert_eq!(d.cookie.mss_v4, synwall_cookie::synwall_v1::DEFAULT_MSS_V4);
    assert_eq!(d.cookie.mss_v6, synwall_cookie::synwall_v1::DEFAULT_MSS_V6);
    let e = loaded.config.engine_config();
    assert_eq!(e.cookie, synwall_cookie::synwall_v1::Config::default());
    assert_eq!(e.server, synwall_engine::ServerParams::default());
    assert!(!e.strict);
    assert_eq!(e.flow_cache, synwall_engine::config::DEFAULT_FLOW_CACHE);
    assert_eq!(
        loaded.config.node.metrics_addr(),
        Some("127.0.0.1:9733".parse().unwrap())
    );
    assert_eq!(
        loaded.config.node.pin_dir(),
        PathBuf::from("/sys/fs/bpf/synwall/synwall")
    );
    assert_eq!(loaded.line_of("edge.interfaces"), Some(4));
    assert_eq!(loaded.line_of("services"), Some(1));
    assert_eq!(loaded.line_of("node.name"), None);
    assert_eq!(loaded.config.edge.xdp_mode, XdpMode::Native);
    assert_eq!(loaded.config.edge.xdp_fallback, XdpFallback::None);
}

/// (case text, expected key, a substring of the expected line or None for "(default)", a
/// substring of the message).
const BAD: &[(&str, &str, Option<&str>, &str)] = &[
    // Typos: unknown keys at each level, misspelt sections.
    ("[node]\nepochseconds = 5\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n",
     "node.epochseconds", Some("epochseconds"), "did you mean node.epoch_seconds?"),
    ("[sevices]\nprotect = [\"10.0.0.0/24:80\"]\n", "sevices", Some("[sevices]"), "did you mean [services]?"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\nxdp-mode = \"native\"\n",
     "edge.xdp-mode", Some("xdp-mode"), "did you mean edge.xdp_mode?"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[cookie]\n\ntsopt = true\n", "cookie.tsopt", Some("tsopt"), "unknown key"),
    ("name = \"edge1\"\n[services]\nprotect = []\n", "name", Some("name ="), "did you mean node.name?"),
    ("[edge]\ninterfaces = [\"eth0\"]\nepoch_seconds = 30\n", "edge.epoch_seconds", Some("epoch_seconds"),
     "did you mean node.epoch_seconds?"),
    ("[auto]\nenable = true\n", "auto.enable", Some("enable ="), "did you mean auto.enabled?"),
    ("[server]\nmss = 1400\n", "server.mss", Some("mss ="), "unknown key (expected one of:"),
    ("[backend]\ninterface = [\"eth0\"]\n", "backend.interface", Some("interface ="), "did you mean backend.interfaces?"),
    ("[node]\nname = \"x\"\n[nodes]\n", "nodes", Some("[nodes]"), "did you mean [node]?"),
    ("\n[[node]]\nname = \"x\"\n", "node", Some("[[node]]"), "array of tables; write [node]"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[cookie]\nmss_v4 = [536, 1200, 1360, 1400, 1440, 1452, 1460, 8960]\nmss_v6 = [1219, 1280, 1360, 1420, 1432, 1440, 8940, 65476]\n",
     "cookie.mss_v6", Some("mss_v6"), "entry 0 (1219) is below 1220"),
    ("cookie = { sack = true, sak = false }\n", "cookie.sak", Some("cookie ="), "did you mean cookie.sack?"),
    // Syntax.
    ("[services]\nprotect = [\"10.0.0.0/24:80\"\n[edge]\n", "", Some("[edge]"), ""),
    ("[node]\nname = synwall\n", "node.name", Some("name ="), "invalid string"),
    // A number beyond TOML's integers is a syntax error: its key and range are still named.
    ("[node]\nepoch_seconds = 99999999999999999999999\n", "node.epoch_seconds", Some("epoch_seconds"),
     "99999999999999999999999 is too large (a TOML number is at most 9223372036854775807); expected a whole number from 1 to 86400"),
    ("[edge]\nflow_cache=1e999999\n", "edge.flow_cache", Some("flow_cache"), ""),
    // Wrong types.
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[node]\nepoch_seconds = \"60\"\n", "node.epoch_seconds",
     Some("epoch_seconds"), "invalid type: string \"60\", expected a whole number from 1 to 86400 (without quotes)"),
    ("[node]\nepoch_seconds = -1\n", "node.epoch_seconds", Some("epoch_seconds"),
     "invalid value: integer \"-1\", expected a whole number from 1 to 86400"),
    ("[server]\nttl = 300\n", "server.ttl", Some("ttl"), "expected a whole number from 1 to 255"),
    ("[edge]\ninterfaces = [\"eth0\"]\nstrict = 1\n", "edge.strict", Some("strict"), "invalid type: integer"),
    ("[node]\nname = [\"a\"]\n", "node.name", Some("name ="), "invalid type: sequence"),
    ("[edge]\ninterfaces = \"eth0\"\n", "edge.interfaces", Some("interfaces"), "expected a sequence"),
    ("[edge]\ninterfaces = [\"eth0\"]\n\nxdp_mode = \"nativ\"\n", "edge.xdp_mode", Some("xdp_mode"),
     "unknown variant \"nativ\", expected \"native\" or \"generic\""),
    ("[edge]\nxdp_fallback = \"skb\"\n", "edge.xdp_fallback", Some("xdp_fallback"), "unknown variant \"skb\""),
    ("[node]\nlog_level = \"verbose\"\n", "node.log_level", Some("log_level"), "unknown variant \"verbose\""),
    ("[server]\nmss_v4 = 70000\n", "server.mss_v4", Some("mss_v4"), "70000\", expected a whole number from 536 to 65535"),
    ("[auto]\nhold_seconds = -1\n", "auto.hold_seconds", Some("hold_seconds"), "-1"),
    ("[cookie]\nmss_v4 = [\n  536,\n  \"1200\",\n  1360,\n]\n", "cookie.mss_v4", Some("\"1200\""),
     "entry 1: invalid type: string \"1200\""),
    ("node = 5\n", "node", Some("node = 5"), "invalid type: integer \"5\", expected a table"),
    ("node.epoch_seconds = true\n", "node.epoch_seconds", Some("node."), "invalid type: boolean"),
    // Out of range and semantic errors.
    ("[node]\nepoch_seconds = 0\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "node.epoch_seconds", Some("epoch_seconds"), "out of range 1..=86400"),
    ("[node]\nepoch_seconds = 86401\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "node.epoch_seconds", Some("epoch_seconds"), "out of range"),
    ("[node]\nname = \"edge 1\"\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "node.name", Some("name ="), "not a valid node name"),
    ("[node]\npin_root = \"bpf/synwall\"\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "node.pin_root", Some("pin_root"), "absolute"),
    ("[node]\nmetrics = \"localhost:9733\"\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "node.metrics", Some("metrics"), "not an address:port"),
    ("[services]\nprotect = []\n[edge]\ninterfaces = [\"eth0\"]\n", "services.protect", Some("protect"), "no services"),
    ("[edge]\ninterfaces = [\"eth0\"]\n", "services.protect", None, "no services"),
    ("[services]\nprotect = [\n  \"10.0.0.0/24:80\",\n  \"10.0.0.1/24:443\",\n]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "services.protect", Some("10.0.0.1/24"), "host bits set"),
    // The same service twice, written the same way or another.
    ("[services]\nprotect = [\"10.0.0.1:80\", \"10.0.0.1:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "services.protect", Some("protect"), "\"10.0.0.1:80\" is listed twice (the same service as entry 0)"),
    ("[services]\nprotect = [\n  \"10.0.0.1:80\",\n  \"192.0.2.0/24:443\",\n  \"10.0.0.1/32:80\",\n]\n[edge]\ninterfaces = [\"eth0\"]\n",
     "services.protect", Some("\"10.0.0.1/32"), "listed twice (the same service as entry 0)"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n", "edge.interfaces", None, "no interfaces"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"averyveryverylongname\"]\n",
     "edge.interfaces", Some("averyvery"), "not an interface name"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth/0\"]\n",
     "edge.interfaces", Some("eth/0"), "not an interface name"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[backend]\ninterfaces = [\n  \"eth0\",\n  \"eth1\",\n  \"eth0\",\n]\n",
     "backend.interfaces", Some("\"eth0\",\n]"), "listed twice"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\nflow_cache = 100\n",
     "edge.flow_cache", Some("flow_cache"), "out of range 1024..=16777216"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[cookie]\nmss_v4 = [536, 1200, 1360, 1400, 1440, 1452, 1460]\n",
     "cookie.mss_v4", Some("mss_v4"), "has 7 entries"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[cookie]\nmss_v6 = [\n1220, 1280, 1360, 1420,\n1432, 1432, 8940, 65476]\n",
     "cookie.mss_v6", Some("1432, 1432"), "strictly ascending"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[cookie]\nmss_v4 = [500, 1200, 1360, 1400, 1440, 1452, 1460, 8960]\n",
     "cookie.mss_v4", Some("mss_v4"), "below 536"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[cookie]\n\ntimestamps = false\n",
     "cookie.ecn", Some("timestamps"), "carried in TSval"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[server]\nwscale = 15\n",
     "server.wscale", Some("wscale"), "0..=14"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[server]\nmss_v6 = 1200\n",
     "server.mss_v6", Some("mss_v6"), "below 1220"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[server]\nttl = 0\n",
     "server.ttl", Some("ttl"), "at least 1"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[server]\nwindow = 0\n",
     "server.window", Some("window"), "at least 1"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[auto]\nsyn_rate_on = 100\nsyn_rate_off = 100\n",
     "auto.syn_rate_off", Some("syn_rate_off"), "must be below auto.syn_rate_on"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[auto]\nhold_seconds = 0\n",
     "auto.hold_seconds", Some("hold_seconds"), "at least 1"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\nstrict = true\n[auto]\nenabled = true\n",
     "edge.strict", Some("strict"), "cannot be combined with auto.enabled"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[backend]\ninterfaces = [\"eth0\"]\ndrop_syns = true\n[auto]\nenabled = true\n",
     "backend.drop_syns", Some("drop_syns"), "a backend that drops SYNs cannot be combined with auto.enabled"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[backend]\ninterfaces = [\"eth0\"]\n[auto]\nhold_seconds = 5000000\n",
     "auto.hold_seconds", Some("hold_seconds"), "at most 4294967 seconds"),
    // The abuse controls.
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\npromoted_cache = 100\n",
     "edge.promoted_cache", Some("promoted_cache"), "neither 0 (no promotion) nor in range 1024..=16777216"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nrate = 0\n",
     "edge.budget.rate", Some("rate"), "0 is out of range 1..=100000000 per second"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nburst = 2000000000\n",
     "edge.budget.burst", Some("burst"), "out of range 1..=1000000000"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nprefix_v6 = 96\n",
     "edge.budget.prefix_v6", Some("prefix_v6"), "/96 is out of range 0..=64"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nprefix_v4 = 33\n",
     "edge.budget.prefix_v4", Some("prefix_v4"), "not an IPv4 prefix length"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nprefix_v4 = 300\n",
     "edge.budget.prefix_v4", Some("prefix_v4"), "expected a whole number from 0 to 32"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nprefixes = 10\n",
     "edge.budget.prefixes", Some("prefixes"), "out of range 1024..=16777216 client prefixes"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nnode_rate = 50000\n",
     "edge.budget.node_burst", Some("node_rate"), "must be at least 1 with edge.budget.node_rate = 50000"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nnode_burst = 10\n",
     "edge.budget.node_burst", Some("node_burst"), "has no effect without edge.budget.node_rate"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.flow_budget]\nburst = 0\n",
     "edge.flow_budget.burst", Some("burst"), "0 is out of range 1..=1000000000"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.deny]\nprefixes = [\n  \"10.0.0.0/8\",\n  \"10.1.2.3/24\",\n]\n",
     "edge.deny.prefixes", Some("\"10.1.2.3/24"), "host bits set; did you mean 10.1.2.0/24?"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.allow]\nprefixes = [\"2001:db8::/32\", \"example.com\"]\n",
     "edge.allow.prefixes", Some("prefixes"), "\"example.com\" is not an IP address"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.allow]\nprefixes = [\n  \"192.0.2.7\",\n  \"192.0.2.7/32\",\n]\n",
     "edge.allow.prefixes", Some("\"192.0.2.7/32"), "listed twice (the same prefix as entry 0)"),
    ("[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n[edge.budget]\nrat = 5\n",
     "edge.budget.rat", Some("rat"), "did you mean edge.budget.rate?"),
];

/// The 1-based line of the first line of `text` that contains `marker` (which may span lines: the
/// line where it starts).
fn line_of_marker(text: &str, marker: &str) -> usize {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in {text:?}"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn bad_configs_name_key_and_line() {
    assert!(BAD.len() >= 25);
    for (i, &(text, key, marker, message)) in BAD.iter().enumerate() {
        let err = match NodeConfig::parse(text, "synwall.toml") {
            Ok(_) => panic!("case {i} loaded:\n{text}"),
            Err(e) => e,
        };
        let p = err.problems();
        assert_eq!(
            p.len(),
            1,
            "case {i}: one problem expected:\n{err}\n--\n{text}"
        );
        let want_line = marker.map(|m| line_of_marker(text, m));
        assert_eq!(p[0].key, key, "case {i}: {err}\n--\n{text}");
        assert_eq!(p[0].line, want_line, "case {i}: {err}\n--\n{text}");
        assert!(
            p[0].message.contains(message),
            "case {i}: {:?} lacks {message:?}\n--\n{text}",
            p[0].message
        );
        // Rust's type names are not the reader's words.
        for jargon in ["expected u", "expected i64", "target type"] {
            assert!(
                !p[0].message.contains(jargon),
                "case {i}: {:?}",
                p[0].message
            );
        }
        // Display: origin:line: key: message, or (default).
        let shown = err.to_string();
        let head = match (want_line, key.is_empty()) {
            (Some(l), false) => format!("synwall.toml:{l}: {key}: "),
            (Some(l), true) => format!("synwall.toml:{l}: "),
            (None, _) => format!("synwall.toml: {key} (default): "),
        };
        assert!(shown.starts_with(&head), "case {i}: {shown:?} vs {head:?}");
        assert!(!shown.contains('\n'), "case {i}: {shown:?}");
    }
}

#[test]
fn display_matches_the_documented_form() {
    let text = "[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\nxdp_mode = \"nativ\"\n";
    let err = NodeConfig::parse(text, "synwall.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "synwall.toml:5: edge.xdp_mode: unknown variant \"nativ\", expected \"native\" or \"generic\""
    );
    let err = NodeConfig::parse("[node]\n\n\nepochseconds = 1\n", "synwall.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "synwall.toml:4: node.epochseconds: unknown key (did you mean node.epoch_seconds?)"
    );
}

#[test]
fn all_unknown_keys_and_all_semantic_errors_at_once() {
    let err = NodeConfig::parse(
        "[node]\nnmae = \"a\"\n[edge]\nstrick = true\n[foo]\nx = 1\n",
        "f",
    )
    .unwrap_err();
    let keys: Vec<(&str, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.key.as_str(), p.line))
        .collect();
    assert_eq!(
        keys,
        [
            ("node.nmae", Some(2)),
            ("edge.strick", Some(4)),
            ("foo", Some(5))
        ]
    );

    let text = "[node]\nepoch_seconds = 0\n[edge]\ninterfaces = [\"eth0\", \"eth0\"]\n[cookie]\ntimestamps = false\n[server]\nttl = 0\n";
    let err = NodeConfig::parse(text, "f").unwrap_err();
    let keys: Vec<(&str, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.key.as_str(), p.line))
        .collect();
    assert_eq!(
        keys,
        [
            ("node.epoch_seconds", Some(2)),
            ("services.protect", None),
            ("edge.interfaces", Some(4)),
            ("cookie.ecn", Some(6)),
            ("server.ttl", Some(8)),
        ]
    );
    assert_eq!(err.to_string().lines().count(), 5);
    // The same checks without a file (a config built in code).
    let mut c = NodeConfig::default();
    c.server.ttl = 0;
    let e = c.validate().unwrap_err();
    assert!(e
        .problems()
        .iter()
        .any(|p| p.key == "server.ttl" && p.line.is_none()));
}

#[test]
fn engine_config_and_interfaces_follow_the_file() {
    let text = r#"
[services]
protect = ["192.0.2.0/24:80,443", "[2001:db8::/64]:8000-8100"]
[edge]
interfaces = ["eth0", "eth1"]
strict = true
flow_cache = 4096
[backend]
interfaces = ["eth1", "eth2"]
[cookie]
sack = false
wscale = false
timestamps = false
ecn = false
mss_v4 = [600, 1200, 1360, 1400, 1440, 1452, 1460, 9000]
[server]
mss_v4 = 1400
mss_v6 = 1380
wscale = 9
window = 29200
ttl = 128
"#;
    let loaded = NodeConfig::parse(text, "t").unwrap();
    let e = loaded.config.engine_config();
    assert!(e.strict);
    assert_eq!(e.flow_cache, 4096);
    assert!(!e.cookie.sack && !e.cookie.wscale && !e.cookie.timestamps && !e.cookie.ecn);
    assert_eq!(
        e.cookie.mss_v4.entries(),
        &[600, 1200, 1360, 1400, 1440, 1452, 1460, 9000]
    );
    assert_eq!(
        e.cookie.mss_v6.entries(),
        &synwall_cookie::synwall_v1::DEFAULT_MSS_V6
    );
    assert_eq!(
        e.server,
        synwall_engine::ServerParams {
            mss_v4: 1400,
            mss_v6: 1380,
            wscale: 9,
            window: 29200,
            ttl: 128
        }
    );
    let want = synwall_engine::ServiceSet::new(vec![
        "192.0.2.0/24:80,443".parse().unwrap(),
        "[2001:db8::/64]:8000-8100".parse().unwrap(),
    ]);
    assert_eq!(e.services, want);
    let r = |edge, backend| Roles { edge, backend };
    assert_eq!(
        loaded.config.interfaces(),
        [
            ("eth0".to_string(), r(true, false)),
            ("eth1".to_string(), r(true, true)),
            ("eth2".to_string(), r(false, true)),
        ]
    );
    // Runtime errors are located like load errors.
    assert_eq!(loaded.line_of("backend.interfaces[1]"), Some(9));
    let err = loaded.error("backend.interfaces[1]", "no such interface");
    assert_eq!(
        err.to_string(),
        "t:9: backend.interfaces: no such interface"
    );
    let err = loaded.error("node.metrics", "address in use");
    assert_eq!(err.to_string(), "t: node.metrics (default): address in use");
    // The effective config prints as TOML and reads back the same.
    let printed = toml::to_string(&loaded.config).unwrap();
    assert_eq!(
        NodeConfig::parse(&printed, "p").unwrap().config,
        loaded.config
    );
}

#[test]
fn abuse_controls_follow_the_file() {
    // The defaults: the reflection budget and the flow budget on, no node cap, no lists.
    let d = NodeConfig::parse(MINIMAL, "m")
        .unwrap()
        .config
        .engine_config();
    assert_eq!(d.budget, Some(synwall_engine::Budget::DEFAULT));
    assert_eq!(d.flow_budget, Some(synwall_engine::Budget::DEFAULT));
    assert_eq!(d.node_budget, None);
    assert_eq!(
        d.client_prefix,
        synwall_engine::ClientPrefix { v4: 24, v6: 48 }
    );
    assert_eq!(
        d.promoted_cache,
        synwall_engine::config::DEFAULT_PROMOTED_CACHE
    );
    assert!(d.lists.is_empty());
    let text = format!(
        "{MINIMAL}promoted_cache = 0\n[edge.budget]\nrate = 10\nburst = 20\nprefix_v4 = 16\n\
         prefix_v6 = 56\nprefixes = 2048\nnode_rate = 5000\nnode_burst = 100\n\
         [edge.flow_budget]\nenabled = false\n[edge.deny]\nprefixes = [\"203.0.113.0/24\", \
         \"2001:db8:bad::/48\"]\n[edge.allow]\nprefixes = [\"192.0.2.7\"]\n"
    );
    let loaded = NodeConfig::parse(&text, "t").unwrap_or_else(|e| panic!("{e}"));
    let e = loaded.config.engine_config();
    assert_eq!(e.promoted_cache, 0);
    assert_eq!(
        e.budget,
        Some(synwall_engine::Budget {
            rate: 10,
            burst: 20
        })
    );
    assert_eq!(
        e.node_budget,
        Some(synwall_engine::Budget {
            rate: 5000,
            burst: 100
        })
    );
    assert_eq!(
        e.client_prefix,
        synwall_engine::ClientPrefix { v4: 16, v6: 56 }
    );
    assert_eq!(e.budget_prefixes, 2048);
    assert_eq!(e.flow_budget, None);
    assert_eq!(
        e.lists.deny,
        [
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8:bad::/48".parse().unwrap()
        ]
    );
    assert_eq!(e.lists.allow, ["192.0.2.7/32".parse().unwrap()]);
    assert_eq!(e.validate(), Ok(()));
    assert_eq!(loaded.line_of("edge.budget.node_rate"), Some(12));
    let off = NodeConfig::parse(&format!("{MINIMAL}[edge.budget]\nenabled = false\n"), "o")
        .unwrap()
        .config
        .engine_config();
    assert_eq!(off.budget, None);
}

#[test]
fn reload_plan_classifies_changes() {
    let old = NodeConfig::load(&dist()).unwrap().config;
    assert_eq!(old.reload_plan(&old.clone()), Ok(vec![]));

    let mut new = old.clone();
    new.services.protect.push("198.51.100.0/24:22".into());
    new.cookie.ecn = false;
    new.server.wscale = 8;
    new.edge.strict = true;
    new.backend.drop_syns = true;
    new.auto.hold_seconds = 30;
    new.node.secret_file = "/etc/synwall/secret2".into();
    new.node.log_level = synwall_config::LogLevel::Debug;
    new.node.set_sysctls = true;
    new.edge.budget.rate = 50;
    new.edge.budget.enabled = false;
    new.edge.budget.prefix_v4 = 16;
    new.edge.budget.node_rate = 9;
    new.edge.budget.node_burst = 9;
    new.edge.flow_budget.burst = 7;
    new.edge.deny.prefixes.push("192.0.2.0/24".into());
    new.edge.allow.prefixes.push("2001:db8::/32".into());
    let changes = old.reload_plan(&new).unwrap();
    let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "auto.hold_seconds",
            "backend.drop_syns",
            "cookie.ecn",
            "edge.allow.prefixes",
            "edge.budget.enabled",
            "edge.budget.node_burst",
            "edge.budget.node_rate",
            "edge.budget.prefix_v4",
            "edge.budget.rate",
            "edge.deny.prefixes",
            "edge.flow_budget.burst",
            "edge.strict",
            "node.log_level",
            "node.secret_file",
            "node.set_sysctls",
            "server.wscale",
            "services.protect",
        ]
    );
    let wscale = changes.iter().find(|c| c.key == "server.wscale").unwrap();
    assert_eq!((wscale.old.as_str(), wscale.new.as_str()), ("7", "8"));
    let level = changes.iter().find(|c| c.key == "node.log_level").unwrap();
    assert_eq!(
        (level.old.as_str(), level.new.as_str()),
        ("\"info\"", "\"debug\"")
    );

    type Edit = fn(&mut NodeConfig);
    let refused: [(&str, Edit); 11] = [
        ("edge.promoted_cache", |c| c.edge.promoted_cache = 0),
        ("edge.budget.prefixes", |c| c.edge.budget.prefixes = 4096),
        ("node.name", |c| c.node.name = "other".into()),
        ("node.pin_root", |c| {
            c.node.pin_root = "/sys/fs/bpf/x".into()
        }),
        ("node.epoch_seconds", |c| c.node.epoch_seconds = 120),
        ("node.metrics", |c| c.node.metrics = String::new()),
        ("edge.interfaces", |c| c.edge.interfaces.push("eth1".into())),
        ("edge.xdp_mode", |c| c.edge.xdp_mode = XdpMode::Generic),
        ("edge.xdp_fallback", |c| {
            c.edge.xdp_fallback = XdpFallback::Generic
        }),
        ("edge.flow_cache", |c| c.edge.flow_cache = 2048),
        ("backend.interfaces", |c| c.backend.interfaces.clear()),
    ];
    for (key, change) in refused {
        let mut bad = new.clone();
        change(&mut bad);
        let r = old.reload_plan(&bad).unwrap_err();
        assert_eq!(r.len(), 1, "{key}: {r:?}");
        assert_eq!(r[0].key, key);
        assert_ne!(r[0].old, r[0].new);
        assert!(r[0].why.contains("restart"), "{:?}", r[0]);
    }
    let mut moved = old.clone();
    moved.edge.interfaces = vec!["eth9".into()];
    let r = old.reload_plan(&moved).unwrap_err();
    assert_eq!(r[0].old, "[\"eth0\"]");
    assert_eq!(r[0].new, "[\"eth9\"]");
    assert_eq!(
        r[0].why,
        "interfaces are attached at start; restart to change them"
    );
}

#[test]
fn secret_file_parsing_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    use synwall_config::{parse_secret, read_secret_file, secret_file_warning};
    let hex64 = "00112233445566778899aabbccddeeff0123456789ABCDEFfedcba9876543210";
    let s = parse_secret(format!("  {hex64}\n").as_bytes()).unwrap();
    assert_eq!(&s[..2], &[0x00, 0x11]);
    assert_eq!(&s[16..20], &[0x01, 0x23, 0x45, 0x67]);
    assert_eq!(&s[24..], &[0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10]);
    assert_eq!(parse_secret(&[9u8; 32]).unwrap(), [9u8; 32]);
    let e = parse_secret(&hex64.as_bytes()[..62])
        .unwrap_err()
        .to_string();
    assert!(e.contains("62 hex characters"), "{e}");
    assert!(parse_secret(&[7u8; 33]).is_err());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{hex64}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_secret_file(&path).unwrap(), s);
    assert_eq!(secret_file_warning(&path), None);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let w = secret_file_warning(&path).unwrap();
    assert!(w.contains("0640") && w.contains("chmod 600"), "{w}");

    std::fs::write(&path, b"short").unwrap();
    let e = read_secret_file(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("secret file {}: ", path.display())),
        "{e}"
    );
    let e = read_secret_file(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read secret file"), "{e}");
}

/// `%d/NAME` is the unit's systemd credential NAME, read from `$CREDENTIALS_DIRECTORY`; a path is a
/// file. Both read the same secret formats; the errors say what to set when the directory or the
/// credential is missing.
#[test]
fn secrets_come_from_a_file_or_a_systemd_credential() {
    use std::path::Path;
    use synwall_config::{SecretSource, CREDENTIALS_DIRECTORY};
    let cred = SecretSource::parse(Path::new("%d/synwall-secret")).unwrap();
    assert_eq!(cred, SecretSource::Credential("synwall-secret".into()));
    assert_eq!(cred.to_string(), "%d/synwall-secret");
    let file = SecretSource::parse(Path::new("/etc/synwall/secret")).unwrap();
    assert_eq!(file, SecretSource::File("/etc/synwall/secret".into()));
    assert_eq!(
        file.path_in(None).unwrap(),
        Path::new("/etc/synwall/secret")
    );

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        cred.path_in(Some(dir.path())).unwrap(),
        dir.path().join("synwall-secret")
    );
    for unset in [None, Some(Path::new(""))] {
        let e = cred.path_in(unset).unwrap_err().to_string();
        assert!(
            e.contains(&format!("${CREDENTIALS_DIRECTORY} is not set"))
                && e.contains("LoadCredential=synwall-secret:"),
            "{e}"
        );
    }
    // A config with the credential is valid as a whole (validation reads no file).
    let text = "[node]\nsecret_file = \"%d/synwall-secret\"\n[services]\nprotect = [\"10.0.0.0/24:80\"]\n[edge]\ninterfaces = [\"eth0\"]\n";
    let loaded = synwall_config::NodeConfig::parse(text, "c.toml").unwrap();
    assert_eq!(
        SecretSource::parse(&loaded.config.node.secret_file).unwrap(),
        cred
    );
    // Reading through the environment is the binary's job (a test that sets the variable would
    // race the other tests of this process): `synwall check-config` and `synwall run` are tested
    // with a prepared $CREDENTIALS_DIRECTORY in crates/synwall/tests.
}

#[test]
fn unreadable_config_file_is_an_error() {
    let err = NodeConfig::load(std::path::Path::new("/nonexistent/synwall.toml")).unwrap_err();
    assert_eq!(err.problems().len(), 1);
    assert!(err
        .to_string()
        .starts_with("/nonexistent/synwall.toml: cannot read the config file"));
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("latin1.toml");
    std::fs::write(&f, b"[node]\n# caf\xc3\xa9\nname = \"n\xe9\"\n").unwrap();
    let err = NodeConfig::load(&f).unwrap_err();
    assert_eq!(err.problems().len(), 1);
    assert_eq!(err.problems()[0].line, Some(3));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: not UTF-8 text: byte 0xe9 at column 10 (a config file must be UTF-8; was it \
             saved in another encoding?)",
            f.display()
        )
    );
}
