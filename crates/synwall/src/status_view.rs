//! What `synwall status` prints: a `top`-like page for someone who has never seen synwall, and the
//! same reading as JSON for scripts. Both take the current [`Snapshot`] and, for rates, the one
//! before it.

use crate::snapshot::{ProgramSnapshot, Snapshot};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use synwall_engine::Counter;

/// The version of the `--json` schema (docs/STATUS_JSON.md): raised when a field is removed,
/// renamed or changes its type or meaning; fields may be added without a change.
pub const JSON_SCHEMA_VERSION: u64 = 1;

/// The page's width when the terminal's is unknown (output into a pipe or a file).
pub const WIDTH: usize = 100;

/// What happened to the packets a counter counts. Derived from the counter's name so that a
/// counter appended to `counters.def` later still lands under a heading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Answered,
    Forwarded,
    Passed,
    Dropped,
    KfuncErrors,
    Other,
}

impl Group {
    const ALL: [Group; 6] = [
        Group::Answered,
        Group::Forwarded,
        Group::Passed,
        Group::Dropped,
        Group::KfuncErrors,
        Group::Other,
    ];

    fn title(self) -> &'static str {
        match self {
            Group::Answered => "Answered",
            Group::Forwarded => "Forwarded",
            Group::Passed => "Passed",
            Group::Dropped => "Dropped",
            Group::KfuncErrors => "kfunc errors",
            Group::Other => "Other",
        }
    }

    /// What the heading means, for the MEANING column.
    fn meaning(self) -> &'static str {
        match self {
            Group::Answered => "cookie SYN+ACKs sent back from the edge",
            Group::Forwarded => "sent on to the service, or made connections",
            Group::Passed => "left alone: not ours, or left to the kernel",
            Group::Dropped => "malformed, invalid or not validated",
            Group::KfuncErrors => "kfunc refused; the ACK went to the kernel",
            Group::Other => "counters this version has no heading for",
        }
    }

    /// The heading a counter belongs under, from its metric name.
    pub fn of(name: &str) -> Group {
        // Order matters: "kfunc" before anything else on the backend, "invalid" before "valid",
        // "drop" before "pass" (no name has both today, a drop is the stronger statement).
        if name.contains("kfunc") {
            Group::KfuncErrors
        } else if name.contains("drop") || name.contains("invalid") {
            Group::Dropped
        } else if name.contains("pass")
            || name.contains("no_listener")
            || name.contains("timewait")
            || name.contains("ack_vlan")
            || name.starts_with("auto_")
        {
            Group::Passed
        } else if name.contains("fwd")
            || name.contains("established")
            || name.contains("valid")
            || name.contains("created")
        {
            Group::Forwarded
        } else if name.contains("answered") {
            Group::Answered
        } else {
            Group::Other
        }
    }
}

/// Seconds between two readings, when `prev` is usable for rates.
fn interval(cur: &Snapshot, prev: Option<&Snapshot>) -> Option<f64> {
    let prev = prev?;
    (cur.taken_ms > prev.taken_ms).then(|| (cur.taken_ms - prev.taken_ms) as f64 / 1000.0)
}

/// The program of `prev` that corresponds to `cur.programs[i]`: same role, same position among
/// the programs of that role.
pub(crate) fn matching<'a>(
    cur: &Snapshot,
    i: usize,
    prev: &'a Snapshot,
) -> Option<&'a ProgramSnapshot> {
    let role = cur.programs[i].role;
    let nth = cur.programs[..i].iter().filter(|p| p.role == role).count();
    prev.programs.iter().filter(|p| p.role == role).nth(nth)
}

/// Per-counter rates per second for program `i`; `None` for a counter that went down (the program
/// was reloaded, the count restarted) and for all of them without a usable previous reading.
fn rates(cur: &Snapshot, i: usize, prev: Option<&Snapshot>) -> Option<Vec<Option<f64>>> {
    let dt = interval(cur, prev)?;
    let before = matching(cur, i, prev?)?;
    Some(
        cur.programs[i]
            .counters
            .iter()
            .map(|(c, v)| {
                let was = before.counters.get(c);
                (v >= was).then(|| (v - was) as f64 / dt)
            })
            .collect(),
    )
}

fn fmt_count(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fmt_rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r < 1000.0 => format!("{r:.1}"),
        Some(r) => fmt_count(r.round() as u64),
    }
}

/// A help text short enough for the last column: the role prefix and words every row shares go
/// (the program heading and the group say them), then it is cut at a clause boundary or, failing
/// that, with "...".
fn shorten(help: &str, room: usize) -> String {
    let mut h = help;
    for p in ["Backend: ", "Strict mode: "] {
        h = h.strip_prefix(p).unwrap_or(h);
    }
    let mut h = h
        .replace(" to a protected service", "")
        .replace(" to a protected prefix", "");
    if h.chars().count() > room {
        if let Some(i) = [" (", ", "]
            .iter()
            .filter_map(|sep| h.find(sep))
            .filter(|&i| i > 0 && i <= room)
            .min()
        {
            h.truncate(i);
        }
    }
    if h.chars().count() > room {
        h = h.chars().take(room.saturating_sub(3)).collect::<String>() + "...";
    }
    // Sentence case, but not for a function name such as bpf_sk_assign_tcp_reqsk.
    if !h.starts_with("bpf_") {
        if let Some(first) = h.chars().next() {
            h = first.to_uppercase().collect::<String>() + &h[first.len_utf8()..];
        }
    }
    h
}

use crate::snapshot::{duration, fmt_utc};

/// The daemon, the salts and the health: what a reader must know first, loudly when something
/// is wrong (the data path keeps running without a daemon, until its salts run out).
fn salt_lines(out: &mut String, cur: &Snapshot, width: usize) {
    let mut o = String::new();
    let now = cur.taken_ms;
    match cur.heartbeat() {
        Some((pid, ms)) if cur.daemon_alive() => {
            let _ = writeln!(
                o,
                "daemon: alive (pid {pid}, heartbeat {} ago)",
                duration(now.saturating_sub(ms))
            );
        }
        Some((pid, ms)) => {
            let _ = writeln!(
                o,
                "daemon: NOT ALIVE: no heartbeat from pid {pid} for {} (stopped, killed or hung); \
                 the programs keep running on the salts written ahead",
                duration(now.saturating_sub(ms))
            );
        }
        None => {
            let _ = writeln!(o, "daemon: NOT RUNNING: no heartbeat was ever written");
        }
    }
    for p in &cur.programs {
        let s = &p.salts;
        let role = p.role.as_str();
        if s.epoch_seconds == 0 {
            let _ = writeln!(
                o,
                "salts ({role}): NONE WRITTEN: SYNs and ACKs pass to the kernel"
            );
            continue;
        }
        let next = duration(s.next_rotation_ms.saturating_sub(now));
        let keys = format!(
            "key {}{}",
            s.key.as_deref().unwrap_or("-"),
            s.accepted_key
                .as_deref()
                .map_or(String::new(), |k| format!(", accepted secret's key {k}"))
        );
        match (s.stale, s.runs_out_ms) {
            (false, Some(end)) => {
                let _ = writeln!(
                    o,
                    "salts ({role}): epoch {} of {} s, {keys}; next rotation in {next}; written up \
                     to epoch {}: they run out at {} (in {})",
                    s.live_epoch,
                    s.epoch_seconds,
                    s.written_until_epoch.unwrap_or(s.live_epoch),
                    fmt_utc(end),
                    duration(end.saturating_sub(now))
                );
            }
            (_, end) => {
                let when = end.map_or(String::new(), |e| {
                    format!(
                        " at {} ({} ago)",
                        fmt_utc(e),
                        duration(now.saturating_sub(e))
                    )
                });
                let _ = writeln!(
                    o,
                    "salts ({role}): RAN OUT{when}: no salt for epoch {}; {} pass to the kernel \
                     (fail-safe) until the daemon writes salts again",
                    s.live_epoch,
                    if p.role == crate::snapshot::Role::Edge {
                        "SYNs"
                    } else {
                        "ACKs that do not validate"
                    }
                );
            }
        }
    }
    let _ = writeln!(o, "health: {}", cur.health.line());
    for line in o.lines() {
        out.push_str(&wrap(line, width, "    "));
    }
}

// The longest counter name today is 25 characters; a total up to 999,999,999,999 fits.
const NAME_W: usize = 25;
const TOTAL_W: usize = 15;
const RATE_W: usize = 9;
/// The MEANING column is never narrower than this, however narrow the terminal.
const MIN_HELP_W: usize = 20;

/// The room for the MEANING column on a page `width` characters wide: the indent (4), the other
/// columns and the three single spaces between them take the rest.
fn help_width(width: usize) -> usize {
    width
        .saturating_sub(4 + NAME_W + TOTAL_W + RATE_W + 3)
        .max(MIN_HELP_W)
}

/// The page `synwall status` prints, `width` characters wide (the MEANING column takes what the
/// others leave). Rates come from `prev` (shown as `-` without it). Each program lists the
/// counters its program can increment; zero rows are hidden unless `all`.
pub fn render_text(cur: &Snapshot, prev: Option<&Snapshot>, all: bool, width: usize) -> String {
    let help_w = help_width(width);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "synwall on node {:?}, read at {}",
        cur.node,
        fmt_utc(cur.taken_ms)
    );
    if let Some(dt) = interval(cur, prev) {
        let _ = writeln!(o, "rates are per second over the last {dt:.1} s");
    } else {
        let _ = writeln!(o, "rates need two readings (use --watch)");
    }
    let _ = writeln!(
        o,
        "counters are named as in /metrics: synwall_<COUNTER>_total{{role=\"edge\"|\"backend\"}}"
    );
    salt_lines(&mut o, cur, width);
    let _ = writeln!(
        o,
        "strict mode: {}",
        if cur.strict {
            "on (only flows whose handshake ACK validated are forwarded)"
        } else {
            "off (non-SYN segments are forwarded, the backend validates)"
        }
    );
    let mut any_auto = false;
    for p in &cur.programs {
        if let Some(a) = &p.auto {
            any_auto = true;
            let _ = writeln!(
                o,
                "auto mode ({}): cookies {}; SYN rate {}/s (on above {}/s, off below {}/s)",
                p.role.as_str(),
                if a.cookies_on { "ON" } else { "off" },
                fmt_count(a.syn_rate),
                fmt_count(a.syn_rate_on),
                fmt_count(a.syn_rate_off)
            );
        }
    }
    if !any_auto {
        let _ = writeln!(o, "auto mode: not configured");
    }
    if cur.programs.is_empty() {
        let _ = writeln!(o, "\nno programs loaded");
    }

    for (i, p) in cur.programs.iter().enumerate() {
        let r = rates(cur, i, prev);
        let rate_of = |c: Counter| r.as_ref().and_then(|v| v[c as usize]);
        let ifaces = if p.interfaces.is_empty() {
            "no interface".to_string()
        } else {
            p.interfaces.join(", ")
        };
        let _ = writeln!(o, "\n{} program on {}", p.role.as_str(), ifaces);
        let _ = writeln!(
            o,
            "  {:<w1$} {:>TOTAL_W$} {:>RATE_W$} MEANING",
            "COUNTER",
            "TOTAL",
            "PER SEC",
            w1 = NAME_W + 2
        );
        let mut shown = 0;
        for g in Group::ALL {
            // A count the analysis of the program says it cannot make would still be shown.
            let rows: Vec<(Counter, u64)> = p
                .counters
                .iter()
                .filter(|&(c, v)| Group::of(c.name()) == g && ((all && p.role.counts(c)) || v > 0))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let sum: u64 = rows.iter().map(|&(_, v)| v).sum();
            let sum_rate = r.as_ref().map(|_| {
                rows.iter()
                    .map(|&(c, _)| rate_of(c).unwrap_or(0.0))
                    .sum::<f64>()
            });
            let _ = writeln!(
                o,
                "  {:<w1$} {:>TOTAL_W$} {:>RATE_W$} {}",
                g.title(),
                fmt_count(sum),
                fmt_rate(sum_rate),
                g.meaning(),
                w1 = NAME_W + 2
            );
            for (c, v) in rows {
                shown += 1;
                let _ = writeln!(
                    o,
                    "    {:<NAME_W$} {:>TOTAL_W$} {:>RATE_W$} {}",
                    c.name(),
                    fmt_count(v),
                    fmt_rate(rate_of(c)),
                    shorten(c.help(), help_w)
                );
            }
        }
        if shown == 0 {
            let _ = writeln!(o, "    (no packets counted yet)");
        }
        let total_rate = r.as_ref().map(|v| v.iter().map(|x| x.unwrap_or(0.0)).sum());
        let _ = writeln!(
            o,
            "  {:<w1$} {:>TOTAL_W$} {:>RATE_W$}",
            "All packets seen",
            fmt_count(p.counters.total()),
            fmt_rate(total_rate),
            w1 = NAME_W + 2
        );
    }
    let hints = crate::hints::hints(cur, prev);
    if !hints.is_empty() {
        let _ = writeln!(o);
        for h in &hints {
            o.push_str(&wrap(&format!("hint: {}", h.line()), width, "      "));
        }
    }
    o
}

/// `text` as lines of at most `width` characters, broken at spaces; lines after the first start
/// with `indent`. A word longer than a line stays whole.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > indent.len() && len + 1 + word.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The reading as JSON (docs/STATUS_JSON.md): `schema_version`, the snapshot as it serialises,
/// plus per program `rates` (counter name -> per second, `null` for a counter that restarted) or
/// `null` without a previous reading, `interval_seconds` and `hints` at the top level.
pub fn render_json(cur: &Snapshot, prev: Option<&Snapshot>) -> Value {
    // Snapshot is plain data with string keys: serialising it cannot fail.
    let mut v = serde_json::to_value(cur).expect("snapshot serialises");
    v["schema_version"] = json!(JSON_SCHEMA_VERSION);
    if let Some(progs) = v.get_mut("programs").and_then(Value::as_array_mut) {
        for (i, p) in progs.iter_mut().enumerate() {
            let r = rates(cur, i, prev).map(|r| {
                let m: Map<String, Value> = Counter::ALL
                    .iter()
                    .map(|&c| (c.name().to_string(), json!(r[c as usize])))
                    .collect();
                Value::Object(m)
            });
            p["rates"] = r.unwrap_or(Value::Null);
        }
    }
    v["interval_seconds"] = json!(interval(cur, prev));
    v["hints"] = json!(crate::hints::hints(cur, prev));
    v
}

/// One `--watch` frame: clear the screen, cursor home, then the page.
pub fn watch_frame(text: &str) -> String {
    format!("\x1b[2J\x1b[H{text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Role;

    fn snap(taken_ms: u64, answered: u64, not_ip: u64, reqsk: u64) -> Snapshot {
        crate::snapshot::sample("edge-1", taken_ms, answered, not_ip, reqsk)
    }

    /// The row of `name` in the section of `role`: its whitespace-separated fields.
    fn row(text: &str, role: &str, name: &str) -> Option<Vec<String>> {
        let sec = text.split(&format!("\n{role} program on ")).nth(1)?;
        let sec = sec.split("\n\n").next()?;
        sec.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn text_shows_rates_and_hides_zero_rows() {
        // 2.000 s apart: 1000 -> 3000 answered = 1000/s; 7 -> 8 not-IP = 0.5/s.
        let prev = snap(1_700_000_000_250, 1000, 7, 10);
        let cur = snap(1_700_000_002_250, 3000, 8, 30);
        let t = render_text(&cur, Some(&prev), false, WIDTH);
        for l in t.lines() {
            assert!(l.chars().count() <= WIDTH, "too wide: {l}");
        }
        assert!(t.contains("node \"edge-1\""), "{t}");
        // 1700000002.25 s: 22.25 s into a 60 s epoch: the backend rotates in 37.7 s, the edge
        // 250 ms later; ten epochs are written ahead.
        let joined = t.replace("\n    ", " ");
        for want in [
            "daemon: alive (pid 4242, heartbeat 0.0 s ago)",
            "salts (backend): epoch 28333333 of 60 s, key ",
            "next rotation in 37.7 s; written up to epoch 28333343: they run out at 22:24:00 UTC \
             (in 10 min 37 s)",
            "next rotation in 38.0 s; written up to epoch 28333343: they run out at 22:24:00 UTC \
             (in 10 min 38 s)",
            "health: ok",
        ] {
            assert!(joined.contains(want), "{want:?} not in\n{t}");
        }
        assert!(t.contains("strict mode: off"));
        assert!(t.contains("cookies ON; SYN rate 15,000/s (on above 10,000/s, off below 2,000/s)"));
        assert!(t.contains("over the last 2.0 s"));

        let r = row(&t, "edge", "syn_answered").expect("syn_answered row");
        assert_eq!(r[1..3], ["3,000", "1,000"]);
        let r = row(&t, "edge", "pass_not_ip").expect("pass_not_ip row");
        assert_eq!(r[1..3], ["8", "0.5"]);
        let r = row(&t, "backend", "backend_reqsk_created").expect("reqsk row");
        assert_eq!(r[1..3], ["30", "10.0"]);
        // Zero rows and empty groups are hidden.
        assert!(row(&t, "edge", "drop_fragment").is_none(), "{t}");
        assert!(row(&t, "edge", "backend_reqsk_created").is_none(), "{t}");
        assert!(!t.contains("Dropped"), "{t}");
        // Group lines sum their rows, the total line sums everything.
        let g = row(&t, "edge", "Answered").expect("group line");
        assert_eq!(g[1..3], ["3,000", "1,000"]);
        let total = row(&t, "edge", "All packets seen").unwrap();
        // 1000.5/s, shown rounded above 1000/s.
        assert_eq!(total[3..5], ["3,008", "1,001"], "{total:?}");

        // --all shows zero rows, rate 0.0: each program the counters it can increment, and
        // only those.
        let a = render_text(&cur, Some(&prev), true, WIDTH);
        assert_eq!(
            row(&a, "edge", "drop_fragment").unwrap()[1..3],
            ["0", "0.0"]
        );
        for (role, r) in [("edge", Role::Edge), ("backend", Role::Backend)] {
            for c in Counter::ALL {
                assert_eq!(
                    row(&a, role, c.name()).is_some(),
                    r.counts(c),
                    "{role}: {} with --all",
                    c.name()
                );
            }
        }
        assert!(row(&a, "edge", "backend_kfunc_enomem").is_none(), "{a}");
        assert!(row(&a, "backend", "syn_answered").is_none(), "{a}");
        assert!(row(&a, "backend", "pass_not_ip").is_some(), "{a}");
        for l in a.lines() {
            assert!(l.chars().count() <= WIDTH, "too wide: {l}");
        }

        // No previous reading: totals, "-" for rates.
        let n = render_text(&cur, None, false, WIDTH);
        assert_eq!(
            row(&n, "edge", "syn_answered").unwrap()[1..3],
            ["3,000", "-"]
        );
        assert!(n.contains("rates need two readings"));

        // A counter that went down (program reloaded) has no rate rather than a huge one.
        let reloaded = snap(1_700_000_004_250, 5, 8, 30);
        let r = render_text(&reloaded, Some(&cur), false, WIDTH);
        assert_eq!(row(&r, "edge", "syn_answered").unwrap()[1..3], ["5", "-"]);
    }

    #[test]
    fn json_has_the_snapshot_and_rates() {
        let prev = snap(1_700_000_000_000, 1000, 7, 10);
        let cur = snap(1_700_000_004_000, 3000, 7, 30);
        let j = render_json(&cur, Some(&prev));
        assert_eq!(j["node"], "edge-1");
        assert_eq!(j["interval_seconds"], 4.0);
        assert_eq!(j["programs"][0]["role"], "edge");
        assert_eq!(j["programs"][0]["counters"]["syn_answered"], 3000);
        assert_eq!(j["programs"][0]["rates"]["syn_answered"], 500.0);
        assert_eq!(j["programs"][0]["rates"]["pass_not_ip"], 0.0);
        assert_eq!(j["programs"][1]["rates"]["backend_reqsk_created"], 5.0);
        assert_eq!(j["programs"][0]["auto"]["syn_rate_on"], 10_000);
        let rates = j["programs"][1]["rates"].as_object().unwrap();
        assert_eq!(rates.len(), Counter::COUNT);

        let j = render_json(&cur, None);
        assert!(j["programs"][0]["rates"].is_null());
        assert!(j["interval_seconds"].is_null());
    }

    /// A counter has one name everywhere: each row of the page and each key of the JSON is a
    /// counter whose `/metrics` sample for that program's role is `synwall_<name>_total`, with
    /// the same value; hints name counters the same way.
    #[test]
    fn status_names_counters_as_metrics_does() {
        let prev = snap(1_700_000_000_000, 1000, 7, 10);
        let mut cur = snap(1_700_000_001_000, 3000, 8, 30);
        cur.programs[0].counters.set(Counter::DropSynChecksum, 2);
        let metrics = crate::metrics::render(&cur);
        let sample = |role: &str, name: &str| -> Option<u64> {
            let key = format!("synwall_{name}_total{{role=\"{role}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&key))
                .map(|v| v.parse().unwrap())
        };
        let page = render_text(&cur, Some(&prev), true, 160);
        let j = render_json(&cur, Some(&prev));
        for (i, p) in cur.programs.iter().enumerate() {
            let role = p.role.as_str();
            let sec = page.split(&format!("\n{role} program on ")).nth(1).unwrap();
            let sec = sec.split("\n\n").next().unwrap();
            let mut rows = 0;
            for l in sec.lines().filter(|l| l.starts_with("    ")) {
                let f: Vec<&str> = l.split_whitespace().collect();
                let v: u64 = f[1].replace(',', "").parse().unwrap();
                assert_eq!(sample(role, f[0]), Some(v), "{role} row {l}");
                rows += 1;
            }
            assert!(rows > 3, "{sec}");
            for (k, v) in j["programs"][i]["counters"].as_object().unwrap() {
                assert_eq!(sample(role, k), v.as_u64(), "{role} JSON key {k}");
            }
        }
        for h in crate::hints::hints(&cur, Some(&prev)) {
            assert!(
                sample(h.role.as_str(), &h.counter).is_some(),
                "{}",
                h.counter
            );
        }
        assert!(page.contains("named as in /metrics: synwall_<COUNTER>_total"));
        assert_eq!(j["schema_version"], JSON_SCHEMA_VERSION);
    }

    #[test]
    fn watch_frame_clears_then_draws() {
        assert_eq!(watch_frame("hi\n"), "\x1b[2J\x1b[Hhi\n");
    }

    #[test]
    fn every_counter_today_has_a_real_group() {
        // "Other" is for counters appended later; today's list must all be classified.
        for c in Counter::ALL {
            assert_ne!(Group::of(c.name()), Group::Other, "{}", c.name());
        }
        assert_eq!(Group::of("syn_answered"), Group::Answered);
        assert_eq!(Group::of("strict_ack_valid"), Group::Forwarded);
        assert_eq!(Group::of("backend_ack_invalid"), Group::Dropped);
        assert_eq!(Group::of("backend_established"), Group::Forwarded);
        assert_eq!(Group::of("backend_reqsk_created"), Group::Forwarded);
        assert_eq!(Group::of("backend_no_listener"), Group::Passed);
        assert_eq!(Group::of("backend_ack_vlan"), Group::Passed);
        assert_eq!(Group::of("drop_syn_fragment"), Group::Dropped);
        assert_eq!(Group::of("pass_fragment_nonfirst"), Group::Passed);
        assert_eq!(Group::of("backend_kfunc_enomem"), Group::KfuncErrors);
        assert_eq!(Group::of("strict_drop"), Group::Dropped);
        assert_eq!(Group::of("auto_cookies_off"), Group::Passed);
        assert_eq!(Group::of("something_new"), Group::Other);
    }

    #[test]
    fn descriptions_fit_their_column() {
        let help_w = help_width(WIDTH);
        for c in Counter::ALL {
            let d = shorten(c.help(), help_w);
            assert!(d.chars().count() <= help_w, "{d}");
            assert!(!d.is_empty());
        }
        assert_eq!(
            shorten(Counter::SynAnswered.help(), help_w),
            "SYNs answered with a cookie SYN+ACK"
        );
        assert_eq!(
            shorten(Counter::BackendKfuncEnomem.help(), help_w),
            "bpf_sk_assign_tcp_reqsk returned -ENOMEM"
        );
        assert_eq!(shorten("abcdefghij", 8), "Abcde...");
        assert_eq!(shorten("abc (def), ghi", 8), "Abc");
    }

    /// The MEANING column takes the page's width: a wide terminal shows whole help texts, a
    /// narrow one cuts them, and no line is wider than the page (down to the column's minimum).
    #[test]
    fn the_meaning_column_uses_the_page_width() {
        let prev = snap(1_700_000_000_000, 1000, 7, 10);
        let cur = snap(1_700_000_001_000, 3000, 8, 30);
        let longest = Counter::ALL
            .iter()
            .map(|c| c.help().chars().count())
            .max()
            .unwrap();
        let meaning = |text: &str, role: &str, c: Counter| -> String {
            let sec = text.split(&format!("\n{role} program on ")).nth(1).unwrap();
            let line = sec
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", c.name())))
                .unwrap();
            line.split_whitespace()
                .skip(3)
                .collect::<Vec<_>>()
                .join(" ")
        };
        for width in [80, WIDTH, 160, 4 + NAME_W + TOTAL_W + RATE_W + 3 + longest] {
            let t = render_text(&cur, Some(&prev), true, width);
            for l in t.lines().filter(|l| l.starts_with("    ")) {
                assert!(l.chars().count() <= width, "{width}: too wide: {l}");
            }
            let help_w = help_width(width);
            for (role, r) in [("edge", Role::Edge), ("backend", Role::Backend)] {
                for c in Counter::ALL.into_iter().filter(|&c| r.counts(c)) {
                    let m = meaning(&t, role, c);
                    assert_eq!(m, shorten(c.help(), help_w), "{width}");
                    if c.help().chars().count() <= help_w {
                        assert!(!m.ends_with("..."), "{width}: {m}");
                    }
                }
            }
        }
        // On 160 columns the longest help of today fits whole (it was cut at ~45 before).
        let t = render_text(&cur, Some(&prev), true, 160);
        let m = meaning(&t, "backend", Counter::BackendKfuncEnetunreach);
        assert_eq!(
            m,
            "bpf_sk_assign_tcp_reqsk returned -ENETUNREACH (listener in another netns), ACK passed"
        );
    }

    #[test]
    fn hints_follow_the_page_wrapped_to_its_width() {
        let prev = snap(1_700_000_000_000, 1000, 7, 10);
        let mut cur = snap(1_700_000_001_000, 3000, 8, 30);
        cur.programs[0].counters.set(Counter::DropSynChecksum, 4);
        for width in [80, 160] {
            let t = render_text(&cur, Some(&prev), false, width);
            let tail = t.split("\nhint: ").nth(1).expect(&t);
            assert!(
                tail.starts_with("drop_syn_checksum (edge) is 4, +4 since"),
                "{t}"
            );
            for l in t.lines().skip_while(|l| !l.starts_with("hint: ")) {
                assert!(l.chars().count() <= width, "{width}: too wide: {l}");
            }
            // Unwrapped, the hint is its one line.
            let joined = tail.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            let want = crate::hints::hints(&cur, Some(&prev))[0].line();
            assert_eq!(
                format!("drop_syn_checksum{}", &joined["drop_syn_checksum".len()..]),
                want
            );
        }
        let j = render_json(&cur, Some(&prev));
        assert_eq!(j["hints"][0]["counter"], "drop_syn_checksum");
        assert_eq!(j["hints"][0]["grew"], 4);
        // None without a cause.
        let t = render_text(
            &snap(1_700_000_001_000, 3000, 8, 30),
            Some(&prev),
            false,
            100,
        );
        assert!(!t.contains("hint:"), "{t}");
    }

    #[test]
    fn counts_and_rates_format() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1234567), "1,234,567");
        assert_eq!(fmt_rate(None), "-");
        assert_eq!(fmt_rate(Some(2.26)), "2.3");
        assert_eq!(fmt_rate(Some(12345.6)), "12,346");
    }
}
