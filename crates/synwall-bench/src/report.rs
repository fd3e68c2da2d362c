//! What every benchmark produces: a table (printed, and as Markdown), its JSON and its chart
//! (SVG, drawn by [`crate::charts`] from the JSON's data), and the generated part of
//! docs/BENCHMARKS.md. A stored JSON reads back into a [`Report`], so the charts and the page can
//! be made again from `docs/bench/*.json` without running anything (`synwall-lab report`).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A goal and whether the run met it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    /// The target, e.g. "synwall >= 5x kernel syncookies".
    pub goal: String,
    /// What was measured, e.g. "7.2x".
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// The machine a run came from, and how busy it was.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs the run could use.
    pub cpus: usize,
    /// The CPU model (`/proc/cpuinfo`), when known.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// `uname -r`.
    pub kernel: String,
    /// 1-minute load average when the run started and when it ended, when recorded.
    #[serde(default)]
    pub loadavg: Option<[f64; 2]>,
}

/// The 1-minute load average now.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

impl Machine {
    /// This machine, with the load average at the start of the run (`load0`) and now.
    pub fn probe(load0: f64) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            loadavg: Some([load0, loadavg()]),
        }
    }

    /// One line: "2 CPUs (model), Linux x.y, load average a -> b".
    pub fn describe(&self) -> String {
        let mut s = format!("{} CPUs", self.cpus);
        if let Some(m) = &self.cpu_model {
            s.push_str(&format!(" ({m})"));
        }
        s.push_str(&format!(", Linux {}", self.kernel));
        match self.loadavg {
            Some([a, b]) => s.push_str(&format!(", load average {a:.2} -> {b:.2}")),
            None => s.push_str(", load not recorded"),
        }
        s
    }
}

/// One benchmark's output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Short name (file names: `<name>.json`, `<name>.svg`).
    pub name: String,
    /// Title.
    pub title: String,
    /// The exact command that makes it.
    pub command: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
    /// The bench's typed results.
    pub data: serde_json::Value,
    /// Goals.
    pub goals: Vec<Goal>,
    /// How it was measured and why a goal is missed.
    pub notes: Vec<String>,
    /// The headline figure's unit, e.g. "SYN+ACKs per second".
    pub y_label: String,
    /// The headline figure per defence (label, value): the line above the chart in the Markdown.
    /// JSON has no NaN: serde_json writes it as null, which reads back as NaN.
    #[serde(deserialize_with = "null_is_nan")]
    pub bars: Vec<(String, f64)>,
    /// Where and how busy the machine was ([`crate::run`] fills it in).
    #[serde(default)]
    pub machine: Option<Machine>,
}

fn null_is_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
    let v: Vec<(String, Option<f64>)> = Deserialize::deserialize(d)?;
    Ok(v.into_iter()
        .map(|(l, x)| (l, x.unwrap_or(f64::NAN)))
        .collect())
}

impl Report {
    /// The table as aligned text.
    pub fn table(&self) -> String {
        let n = self.headers.len();
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.len());
            }
        }
        let line = |cells: &[String]| -> String {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = w[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut s = format!("{}\n{}\n", self.title, line(&self.headers));
        for r in &self.rows {
            s.push_str(&line(r));
            s.push('\n');
        }
        for g in &self.goals {
            s.push_str(&format!(
                "goal: {} -> {} ({})\n",
                g.goal,
                g.measured,
                if g.met { "met" } else { "MISSED" }
            ));
        }
        s
    }

    /// The Markdown section for docs/BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut s = format!("### {}\n\n```sh\n{}\n```\n\n", self.title, self.command);
        s.push_str(&format!("| {} |\n", self.headers.join(" | ")));
        s.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s.push('\n');
        for g in &self.goals {
            s.push_str(&format!(
                "- Goal {}: **{}** ({}).\n",
                g.goal,
                if g.met { "met" } else { "missed" },
                g.measured
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("- {n}\n"));
        }
        if let Some(m) = &self.machine {
            s.push_str(&format!("- Machine: {}.\n", m.describe()));
        }
        s.push_str(&format!("\n{}:", self.y_label));
        for (i, (l, v)) in self.bars.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            s.push_str(&format!("{sep}{l} **{}**", fmt_num(*v)));
        }
        s.push_str(&format!(
            ".\n\n![{}](bench/{}.svg)\n\nRaw results: [`bench/{}.json`](bench/{}.json).\n\n",
            self.title, self.name, self.name, self.name
        ));
        s
    }

    /// Read a report back from its JSON (`<dir>/<name>.json`).
    pub fn load(path: &Path) -> Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Write `<dir>/<name>.json` and `<dir>/<name>.svg`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = dir.join(format!("{}.json", self.name));
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("write {}", json.display()))?;
        self.write_svg(dir)
    }

    /// Write only `<dir>/<name>.svg` (the chart of this report's data).
    pub fn write_svg(&self, dir: &Path) -> Result<()> {
        let svg = dir.join(format!("{}.svg", self.name));
        crate::charts::render(self, &svg).with_context(|| format!("write {}", svg.display()))
    }
}

/// A number with at most 3 significant digits and a k/M suffix.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Begin/end markers of the generated part of docs/BENCHMARKS.md.
pub const BEGIN: &str = "<!-- synwall-lab bench: generated, do not edit below -->";
/// End marker.
pub const END: &str = "<!-- synwall-lab bench: end of generated part -->";

/// Replace (or append) the generated part of the Markdown file at `doc`.
pub fn update_doc(doc: &Path, generated: &str) -> Result<()> {
    let text = std::fs::read_to_string(doc).with_context(|| format!("read {}", doc.display()))?;
    let head = match text.find(BEGIN) {
        Some(i) => text[..i].to_string(),
        None => format!("{}\n\n", text.trim_end()),
    };
    let tail = match text.find(END) {
        Some(i) => text[i + END.len()..].to_string(),
        None => "\n".to_string(),
    };
    let out = format!("{head}{BEGIN}\n\n{}\n{END}{tail}", generated.trim_end());
    std::fs::write(doc, out).with_context(|| format!("write {}", doc.display()))
}
