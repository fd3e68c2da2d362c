//! A `synwall edge|backend|single|run` child process inside a namespace: started with `nsenter`,
//! ready once it says its `ready` line, stopped with SIGTERM, its final counters parsed from what
//! it said. Dropping a [`Daemon`] that was not stopped kills it (the foreground commands' XDP/tc
//! links go with it; `synwall run`'s stay pinned).
//!
//! Where the lines come from: the foreground commands print `ready ...` and their counters on
//! stdout; `synwall run` has one stream, its log on stderr, where each line is a message after a
//! log prefix (`TIME LEVEL ` on a terminal or pipe, `<N>` under systemd's journal). Both streams
//! are read, and each line is kept as its message ([`message`]): `ready ...`, `rotated ...`,
//! `reloaded ...`, `edge counters (...)`.

use crate::Netns;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The counters one role printed on exit (`edge counters (N packets):` + `  name value` lines).
/// Counters the daemon left out (zero) read as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// The `N packets` of the header line.
    pub packets: u64,
    /// Non-zero counters by name.
    pub values: BTreeMap<String, u64>,
}

impl Counts {
    /// A counter's value (0 when the daemon did not print it).
    pub fn get(&self, name: &str) -> u64 {
        self.values.get(name).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{} packets: {}", self.packets, v.join(" "))
    }
}

/// A line without its log prefix: `<N>` (the journal's priority) or `TIME LEVEL ` (tracing's
/// format: an RFC 3339 time, then the level). Other lines are returned as they are.
pub fn message(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<') {
        if let Some((n, msg)) = rest.split_once('>') {
            if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) {
                return msg;
            }
        }
    }
    let b = line.as_bytes();
    let stamped =
        b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T';
    if stamped {
        if let Some((_, rest)) = line.split_once(' ') {
            let rest = rest.trim_start();
            for level in ["ERROR ", "WARN ", "INFO ", "DEBUG ", "TRACE "] {
                if let Some(msg) = rest.strip_prefix(level) {
                    return msg;
                }
            }
        }
    }
    line
}

/// Parse every `ROLE counters (N packets):` block of what a daemon said: a header line followed
/// by `  name value` lines (the foreground commands' stdout), or the header followed by
/// `name=value` pairs on the same line (`synwall run`'s log).
pub fn parse_counters(lines: &[String]) -> Result<BTreeMap<String, Counts>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        if let Some((role, rest)) = line.split_once(" counters (") {
            let (n, inline) = rest
                .split_once(" packets):")
                .with_context(|| format!("bad counters header {line:?}"))?;
            let mut counts = Counts {
                packets: n
                    .parse()
                    .with_context(|| format!("bad count in {line:?}"))?,
                values: BTreeMap::new(),
            };
            for pair in inline.split_whitespace() {
                let (name, v) = pair
                    .split_once('=')
                    .with_context(|| format!("bad counter {pair:?} in {line:?}"))?;
                let v: u64 = v
                    .parse()
                    .with_context(|| format!("bad value in {line:?}"))?;
                counts.values.insert(name.to_string(), v);
            }
            out.insert(role.to_string(), counts);
            current = Some(role.to_string());
        } else if let (Some(role), Some(body)) = (&current, line.strip_prefix("  ")) {
            let mut it = body.split_whitespace();
            let (Some(name), Some(v), None) = (it.next(), it.next(), it.next()) else {
                bail!("bad counter line {line:?}");
            };
            let v: u64 = v
                .parse()
                .with_context(|| format!("bad value in {line:?}"))?;
            out.get_mut(role)
                .expect("inserted")
                .values
                .insert(name.to_string(), v);
        } else {
            current = None;
        }
    }
    Ok(out)
}

/// A running `synwall` data-path command.
pub struct Daemon {
    label: String,
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every line's message, both streams, in the order they were read.
    seen: Vec<String>,
    stdout_thread: Option<JoinHandle<()>>,
    /// Returns stderr as written (with log prefixes), for error reports.
    stderr_thread: Option<JoinHandle<String>>,
}

impl Daemon {
    /// Start `exe args...` inside `ns` and wait (at most `limit`) for its `ready` line.
    pub fn start<S: AsRef<str>>(
        ns: &Netns,
        exe: &Path,
        args: &[S],
        limit: Duration,
    ) -> Result<Daemon> {
        Self::start_with_env(ns, exe, args, &[], limit)
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env<S: AsRef<str>>(
        ns: &Netns,
        exe: &Path,
        args: &[S],
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Daemon> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let label = format!("[{}] synwall {}", ns.name(), args.join(" "));
        let mut child = ns
            .command(&exe.to_string_lossy())
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        let tx2 = tx.clone();
        let stdout_thread = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(message(&line).to_string()).is_err() {
                    break;
                }
            }
        });
        let stderr_thread = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                let _ = tx2.send(message(&line).to_string());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut d = Daemon {
            label,
            child: Some(child),
            lines,
            seen: Vec::new(),
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match d.lines.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("ready");
                    d.seen.push(line);
                    if ready {
                        return Ok(d);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let err = d.kill_and_collect();
                    bail!(
                        "{}: no `ready` line within {limit:?}; stderr: {err}",
                        d.label
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let err = d.kill_and_collect();
                    bail!("{}: exited before `ready`; stderr: {err}", d.label)
                }
            }
        }
    }

    /// The `ready` line.
    pub fn ready_line(&self) -> &str {
        self.seen
            .iter()
            .find(|l| l.starts_with("ready"))
            .map_or("", String::as_str)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Send `sig` (e.g. SIGHUP to reload).
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).with_context(|| format!("{}: kill {sig}", self.label))
    }

    /// Wait (at most `limit`) for a line starting with `prefix` (a message: without its log
    /// prefix), said after the ones already seen; returns it.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "{}: no line starting with {prefix:?} within {limit:?}; said so far: {:?}",
                    self.label,
                    self.seen
                ),
            }
        }
    }

    /// Every line said so far (messages, both streams), without waiting.
    pub fn said(&mut self) -> &[String] {
        self.seen.extend(self.lines.try_iter());
        &self.seen
    }

    fn kill_and_collect(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        self.stderr_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// SIGTERM, wait (5 s, then SIGKILL), and parse the counters it printed, by role.
    pub fn stop(self) -> Result<BTreeMap<String, Counts>> {
        Ok(self.stop_and_collect()?.0)
    }

    /// [`Daemon::stop`], also returning every line it said (messages, both streams).
    pub fn stop_and_collect(mut self) -> Result<(BTreeMap<String, Counts>, Vec<String>)> {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{}: did not exit within 5 s of SIGTERM", self.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        let err = self
            .stderr_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        self.seen.extend(self.lines.try_iter());
        if !status.success() {
            bail!(
                "{}: exited with {status}; stderr: {}",
                self.label,
                err.trim()
            );
        }
        let counts = parse_counters(&self.seen)?;
        if counts.is_empty() {
            bail!("{}: said no counters: {:?}", self.label, self.seen);
        }
        Ok((counts, std::mem::take(&mut self.seen)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_and_collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counter_blocks() {
        let out: Vec<String> = [
            "ready single iface=x services=10.0.0.1/32:80 epoch_seconds=60",
            "edge counters (5 packets):",
            "  syn_answered                 3",
            "  pass_not_ip                  2",
            "backend counters (0 packets):",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = parse_counters(&out).unwrap();
        assert_eq!(c["edge"].packets, 5);
        assert_eq!(c["edge"].get("syn_answered"), 3);
        assert_eq!(c["edge"].get("strict_drop"), 0);
        assert_eq!(c["backend"].packets, 0);
        assert!(c["backend"].values.is_empty());
        // `synwall run`'s log: one line per role, after a log prefix.
        let log: Vec<String> = [
            "2026-12-03T11:51:16.967740Z  INFO ready node=n edge=n0 backend=- links=1",
            "<6>edge counters (7 packets): syn_answered=4 pass_not_ip=3",
            "2026-12-03T11:51:29.543560Z  INFO backend counters (0 packets):",
            "2026-12-03T11:51:29.543928Z ERROR reload refused, still running",
        ]
        .iter()
        .map(|l| message(l).to_string())
        .collect();
        assert_eq!(log[0], "ready node=n edge=n0 backend=- links=1");
        assert_eq!(log[3], "reload refused, still running");
        let c = parse_counters(&log).unwrap();
        assert_eq!(c["edge"].packets, 7);
        assert_eq!(c["edge"].get("syn_answered"), 4);
        assert_eq!(c["edge"].get("pass_not_ip"), 3);
        assert_eq!(c["backend"].packets, 0);
        assert!(c["backend"].values.is_empty());
        assert!(parse_counters(&["edge counters (1 packets): a:2".into()]).is_err());
        // Lines that only look prefixed stay as they are.
        assert_eq!(message("<html>"), "<html>");
        assert_eq!(message("ready edge iface=x"), "ready edge iface=x");
        assert!(parse_counters(&["edge counters (x packets):".into()]).is_err());
        assert!(parse_counters(&["edge counters (1 packets):".into(), "  a b".into()]).is_err());
    }
}
