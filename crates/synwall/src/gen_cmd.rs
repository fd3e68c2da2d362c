//! `synwall man` and `synwall completions`: manual pages and shell completions generated from the
//! clap definition, so they cannot disagree with the real flags. Each page gets the sections clap
//! does not know: EXIT STATUS (every page), and for `synwall-run` SIGNALS, LOGGING, ENVIRONMENT,
//! FILES and CONFIGURATION (every key of `dist/synwall.toml`, the documented example, with its
//! text).

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `synwall man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write synwall.1 and one page per subcommand (synwall-run.1, synwall-cookie-encode.1, ...)
    /// into this directory (created if missing). Without it the top page goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Flags of `synwall completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the manual pages. `cmd` is the binary's `Cli::command()`.
pub fn man(cmd: clap::Command, args: ManArgs) -> anyhow::Result<ExitCode> {
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&page(&cmd)?)
                .and_then(|()| out.flush())
                .context("writing the man page to stdout")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for p in write_pages(cmd, &dir)? {
                println!("{}", p.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per visible command, depth first; returns the files written.
fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // `build` gives subcommands their full display names (synwall-cookie-generate), which name
    // the page files; `help` would only get a page that repeats --help.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    fn walk(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let path = dir.join(clap_mangen::Man::new(cmd.clone()).get_filename());
        std::fs::write(&path, page(cmd)?).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, dir, written)?;
        }
        Ok(())
    }
    walk(&cmd, dir, &mut written)?;
    Ok(written)
}

/// The page of `cmd`: clap_mangen's, with our sections before VERSION.
fn page(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut base = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut base)?;
    let base = String::from_utf8(base).context("the page is UTF-8")?;
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let extra = sections(name).render();
    Ok(match base.find("\n.SH VERSION") {
        Some(at) => format!("{}\n{}{}", &base[..at], extra, &base[at + 1..]),
        None => base + &extra,
    }
    .into_bytes())
}

/// What a command's exit status means, by page name. Codes: 0 success, 1 a check that answered
/// no, 2 an error (main's, and clap's for bad arguments).
fn exit_status(page: &str) -> Vec<(u8, &'static str)> {
    const ERROR: &str = "an error: bad arguments or input, or the command could not do its work \
                         (the message says why; nothing was changed)";
    match page {
        "synwall" => {
            vec![
            (0, "success"),
            (1, "a check answered no: cookie check found the ACK invalid, cookie verify-vectors \
                 found a failing case"),
            (crate::ERROR_EXIT, ERROR),
        ]
        }
        "synwall-run" => vec![
            (
                0,
                "stopped by SIGINT or SIGTERM (the programs stay attached, pinned) or by SIGUSR1 \
                 (synwall stop --detach: detached)",
            ),
            (
                crate::ERROR_EXIT,
                "refused to start (the configuration, another daemon running the node, the pin \
                 root, an interface, the secret, a sysctl, the metrics address, loading or \
                 attaching): nothing was attached",
            ),
        ],
        "synwall-edge" | "synwall-backend" | "synwall-single" => vec![
            (
                0,
                "stopped by SIGINT or SIGTERM: detached, counters printed",
            ),
            (crate::ERROR_EXIT, "refused to start: nothing was attached"),
        ],
        "synwall-check-config" => vec![
            (0, "the file, and what it names on this machine, is usable"),
            (
                crate::ERROR_EXIT,
                "a problem, each on stderr as FILE:LINE: KEY: MESSAGE",
            ),
        ],
        "synwall-stop" => vec![
            (
                0,
                "the node is stopped (also when no daemon was running); with --detach nothing \
                 of it is attached or pinned any more (also when nothing was)",
            ),
            (crate::ERROR_EXIT, ERROR),
        ],
        "synwall-cookie-check" => vec![
            (0, "the ACK is valid (the options it restores are printed)"),
            (
                1,
                "the ACK is invalid (the keys tried and the reason are printed)",
            ),
            (crate::ERROR_EXIT, ERROR),
        ],
        "synwall-cookie-verify-vectors" => vec![
            (0, "every case of every file passed"),
            (
                crate::cookie_cmd::VECTORS_FAILED,
                "a case failed (each mismatch is printed)",
            ),
            (
                crate::cookie_cmd::VECTORS_UNCHECKED,
                "a file could not be read or is not a vector \
                 file (this wins over a failed case: the run is incomplete)",
            ),
        ],
        _ => vec![(0, "success"), (crate::ERROR_EXIT, ERROR)],
    }
}

/// The sections a page gets besides clap_mangen's.
fn sections(page: &str) -> roff::Roff {
    use roff::{bold, roman, Roff};
    let mut r = Roff::new();
    let item = |r: &mut Roff, tag: &str, text: &str| {
        r.control("TP", []).text([bold(tag)]).text([roman(text)]);
    };
    if page == "synwall-run" {
        r.control("SH", ["SIGNALS"]);
        item(
            &mut r,
            "SIGHUP",
            "Reload the configuration file: services, the [cookie] and [server] sections, \
             edge.strict, [auto], the secret (node.secret_file and its contents), node.log_level \
             and node.set_sysctls \
             change in place; a change of anything else is refused with a message naming the key, \
             and the node keeps running as it was.",
        );
        item(
            &mut r,
            "SIGINT, SIGTERM",
            "Exit. The programs stay attached and answering (their links and maps are pinned); \
             the next synwall run adopts them, synwall stop --detach removes them.",
        );
        item(
            &mut r,
            "SIGUSR1",
            "Exit and detach: remove the programs and every pin of the node (what synwall stop \
             --detach sends).",
        );
        r.control("SH", ["LOGGING"]);
        r.text([roman(
            "Everything goes to stderr, one line per event, at node.log_level (RUST_LOG \
             overrides it); nothing goes to stdout. Lines for a supervisor are logged at any \
             level, each its message followed by key=value fields: ready (once the programs are \
             attached and pinned), reloaded or reload refused (after SIGHUP), and stopped. \
             A rotation is rotated epoch=E key=K. When a counter that points at a \
             misconfiguration grows, a warning hint: line says what counted, the likely cause and \
             the fix (as synwall status does), at most once per counter every 5 minutes. Under \
             systemd (JOURNAL_STREAM names stderr) a line starts with its syslog priority, <3> \
             to <7>, instead of a time.",
        )]);
        r.control("SH", ["ENVIRONMENT"]);
        item(
            &mut r,
            "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
            "Set by systemd for Type=notify with WatchdogSec=: the daemon sends READY=1 and \
             STATUS= (the epoch and salt in use) once attached, STATUS= at each rotation, \
             RELOADING=1 and READY=1 around a reload, STOPPING=1, and WATCHDOG=1 every half \
             watchdog interval from the loop that rotates the salts.",
        );
        item(
            &mut r,
            "CREDENTIALS_DIRECTORY",
            "Set by systemd for a unit with LoadCredential= (or LoadCredentialEncrypted=, \
             SetCredential=): node.secret_file = \"%d/NAME\" reads the credential NAME there.",
        );
        item(
            &mut r,
            "JOURNAL_STREAM",
            "Set by systemd when stderr is the journal: log lines carry syslog priorities.",
        );
        item(
            &mut r,
            "RUST_LOG",
            "Overrides node.log_level (tracing's filter syntax).",
        );
        r.control("SH", ["FILES"]);
        item(
            &mut r,
            "/etc/synwall/synwall.toml",
            "The configuration (--config); see CONFIGURATION.",
        );
        item(
            &mut r,
            "/etc/synwall/secret",
            "The master secret (node.secret_file): 32 raw bytes or 64 hex characters, mode 0600, \
             the same on every node.",
        );
        item(
            &mut r,
            "/run/synwall/NODE.json, /run/synwall/NODE.lock",
            "The daemon's state (pid, config file, epoch length) and its lock, under --run-dir.",
        );
        item(
            &mut r,
            "/sys/fs/bpf/synwall/NODE/",
            "The pins (node.pin_root/node.name): the maps of edge/ and backend/, and the links \
             of links/. synwall status reads them. The daemon holds a lock (flock) on this \
             directory while it runs: a second synwall run of the node, whatever its --run-dir, \
             exits naming the first one's pid, and synwall stop finds the daemon by it.",
        );
        r.control("SH", ["CONFIGURATION"]);
        r.text([roman(
            "One TOML file. Every key, with the text and the default of the documented \
             example dist/synwall.toml (installed as /etc/synwall/synwall.toml):",
        )]);
        for section in config_keys() {
            r.control("SS", [format!("[{}]", section.name).as_str()]);
            if !section.about.is_empty() {
                r.text([roman(section.about)]);
            }
            for (line, text) in section.keys {
                item(&mut r, &line, &text);
            }
        }
    }
    r.control("SH", ["EXIT STATUS"]);
    for (code, text) in exit_status(page) {
        item(&mut r, &code.to_string(), text);
    }
    r
}

/// A section of `dist/synwall.toml`: its name, the comment above its header, and its keys
/// (`key = value` as written there, the comment above it).
struct ConfigSection {
    name: String,
    about: String,
    keys: Vec<(String, String)>,
}

/// The sections of `dist/synwall.toml`, in file order.
fn config_keys() -> Vec<ConfigSection> {
    let mut out: Vec<ConfigSection> = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in include_str!("../../../dist/synwall.toml").lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix('#') {
            comment.push(c.trim());
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push(ConfigSection {
                name: name.to_string(),
                about: comment.join(" "),
                keys: Vec::new(),
            });
            comment.clear();
        } else if line.contains('=') {
            if let Some(section) = out.last_mut() {
                section.keys.push((line.to_string(), comment.join(" ")));
            }
            comment.clear();
        } else {
            // A blank line ends a comment that belongs to no key (the file's header).
            comment.clear();
        }
    }
    out
}

/// Write a completion script for `args.shell` to stdout.
pub fn completions(mut cmd: clap::Command, args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_string();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    out.flush()
        .context("writing the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}
