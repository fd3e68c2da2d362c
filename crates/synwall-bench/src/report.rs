//! What every benchmark produces: a table (printed, and as Markdown), its JSON and a bar chart
//! (SVG, plotters), and the generated part of docs/BENCHMARKS.md.

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// A goal and whether the run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    /// The target, e.g. "synwall >= 5x kernel syncookies".
    pub goal: String,
    /// What was measured, e.g. "7.2x".
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// One benchmark's output.
#[derive(Clone, Debug, Serialize)]
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
    /// The chart: title of the y axis (with unit) and (label, value) bars.
    pub y_label: String,
    /// Bars.
    pub bars: Vec<(String, f64)>,
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
        s.push_str(&format!(
            "\n![{}](bench/{}.svg)\n\nRaw results: [`bench/{}.json`](bench/{}.json).\n\n",
            self.title, self.name, self.name, self.name
        ));
        s
    }

    /// Write `<dir>/<name>.json` and `<dir>/<name>.svg`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = dir.join(format!("{}.json", self.name));
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("write {}", json.display()))?;
        let svg = dir.join(format!("{}.svg", self.name));
        bar_chart(&svg, &self.title, &self.y_label, &self.bars)
            .with_context(|| format!("write {}", svg.display()))
    }
}

/// A labelled bar chart (SVG). Non-finite values are drawn as 0.
pub fn bar_chart(path: &Path, title: &str, y_label: &str, bars: &[(String, f64)]) -> Result<()> {
    let width = (160 * bars.len() as u32).max(640);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let vals: Vec<f64> = bars
        .iter()
        .map(|(_, v)| if v.is_finite() { *v } else { 0.0 })
        .collect();
    let top = vals.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.15;
    let n = bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d((0u32..n).into_segmented(), 0f64..top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(BLUE.mix(0.6).filled())
                .margin(20)
                .data(vals.iter().enumerate().map(|(i, v)| (i as u32, *v))),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(vals.iter().enumerate().map(|(i, v)| {
            // The label shows the real value: "n/a" where nothing was measured (drawn as 0).
            Text::new(
                fmt_num(bars[i].1),
                (SegmentValue::CenterOf(i as u32), *v + top * 0.02),
                ("sans-serif", 13),
            )
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
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
