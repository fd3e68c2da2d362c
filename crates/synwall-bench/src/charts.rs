//! The benchmark charts (SVG, plotters), drawn from a [`Report`]'s data alone, so a fresh run and
//! a stored `docs/bench/<name>.json` give the same picture. Every label, value and headline comes
//! from the data; the only constants are the colours: one per defence, the same on every chart
//! (synwall is always [`SYNWALL`]). Each figure says who wins in its title, has one legend for
//! its panels, ticks in k/M and ms, and a footer with the command and the machine it came from.

use crate::defense::Defense;
use crate::report::{fmt_num, Report};
use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;
use std::path::Path;
use synwall_baseline::per_packet::{Profile, Program};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// plotters' errors carry the backend's error type; the charts only report them.
macro_rules! pl {
    ($e:expr) => {
        $e.map_err(|e| anyhow!("{e}"))?
    };
}

/// synwall, on every chart.
pub const SYNWALL: RGBColor = RGBColor(0, 114, 178);
/// The kernel's listener with `tcp_syncookies = 2`.
pub const KERNEL: RGBColor = RGBColor(213, 94, 0);
/// iptables SYNPROXY.
pub const SYNPROXY: RGBColor = RGBColor(204, 121, 167);
/// No cookies at all (the quality reference).
pub const NO_COOKIES: RGBColor = RGBColor(100, 100, 100);
/// The XDP program on the kernel's cookie helpers (per packet).
pub const HELPER: RGBColor = RGBColor(230, 159, 0);
/// A bare XDP_TX (per packet).
pub const BARE: RGBColor = RGBColor(165, 165, 165);
/// What the generator offered.
pub const OFFERED: RGBColor = RGBColor(200, 200, 200);
/// Shades of synwall's colour for the stages of its SYN path, first to last.
const STAGE_SHADES: [RGBColor; 4] = [
    RGBColor(198, 219, 239),
    RGBColor(140, 186, 222),
    RGBColor(66, 146, 198),
    RGBColor(8, 69, 148),
];

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 600;
const GREY: RGBColor = RGBColor(90, 90, 90);

/// The colour of a defence.
pub fn defense_colour(d: Defense) -> RGBColor {
    match d {
        Defense::Synwall => SYNWALL,
        Defense::KernelCookies => KERNEL,
        Defense::Synproxy => SYNPROXY,
        Defense::NoCookies => NO_COOKIES,
    }
}

/// Who a bar or a line stands for.
#[derive(Clone, Debug)]
struct Who {
    label: String,
    colour: RGBColor,
}

fn defense(v: &Value) -> Result<Who> {
    let d: Defense = serde_json::from_value(v.clone()).context("a defence")?;
    Ok(Who {
        label: d.label().into(),
        colour: defense_colour(d),
    })
}

fn program(v: &Value) -> Result<Who> {
    for p in Program::ALL {
        if serde_json::to_value(p)? == *v {
            let colour = match p {
                Program::SynwallEdge => SYNWALL,
                Program::HelperCookie => HELPER,
                Program::BareTx => BARE,
            };
            return Ok(Who {
                label: p.name().into(),
                colour,
            });
        }
    }
    bail!("unknown program {v}")
}

fn profile(v: &Value) -> Result<String> {
    for p in [Profile::LinuxDefault, Profile::NoTimestamps] {
        if serde_json::to_value(p)? == *v {
            return Ok(p.name().into());
        }
    }
    bail!("unknown SYN profile {v}")
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut x = v;
    for p in path {
        x = x.get(*p)?;
    }
    x.as_f64().filter(|f| f.is_finite())
}

fn need(v: &Value, path: &[&str]) -> Result<f64> {
    num(v, path).with_context(|| format!("no number at {} in the data", path.join(".")))
}

fn arr<'v>(v: &'v Value, key: &str) -> Result<&'v Vec<Value>> {
    v.get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("no list {key:?} in the data"))
}

fn rows(r: &Report) -> Result<&Vec<Value>> {
    r.data.as_array().context("the data is not a list of rows")
}

/// Axis ticks: 0, 250, 50k, 1.5M.
fn tick(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// A count: exact below 10,000, then k/M.
fn count(v: f64) -> String {
    if v < 1e4 {
        format!("{v:.0}")
    } else {
        fmt_num(v)
    }
}

/// Latency ticks: 0.1 ms, 20 ms, 2 s.
fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", tick(v / 1000.0))
    } else {
        format!("{} ms", tick(v))
    }
}

fn pct(v: f64) -> String {
    format!("{v:.0}%")
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font())
}

/// Text at absolute pixel `(x, y)` of the SVG, drawn on `area`.
fn text(area: &Area, s: &str, (x, y): (i32, i32), size: f64, anchor: (HPos, VPos)) -> Result<()> {
    text_in(area, s, (x, y), size, anchor, &BLACK)
}

fn text_in(
    area: &Area,
    s: &str,
    (x, y): (i32, i32),
    size: f64,
    (h, v): (HPos, VPos),
    colour: &RGBColor,
) -> Result<()> {
    let b = area.get_base_pixel();
    let style = font(size).color(colour).pos(Pos::new(h, v));
    pl!(area.draw(&Text::new(s.to_string(), (x - b.0, y - b.1), style)));
    Ok(())
}

fn rect(area: &Area, (x0, y0): (i32, i32), (x1, y1): (i32, i32), style: ShapeStyle) -> Result<()> {
    let b = area.get_base_pixel();
    pl!(area.draw(&Rectangle::new(
        [(x0 - b.0, y0 - b.1), (x1 - b.0, y1 - b.1)],
        style
    )));
    Ok(())
}

/// Rough width of a label in pixels (the SVG is rendered with the reader's sans-serif).
fn text_width(s: &str, size: f64) -> i32 {
    (s.chars().count() as f64 * size * 0.56) as i32
}

/// How a legend entry is drawn.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Square,
    Line,
    Dashed,
}

#[derive(Clone)]
struct LegendItem {
    label: String,
    colour: RGBColor,
    key: Key,
}

fn square(w: &Who) -> LegendItem {
    LegendItem {
        label: w.label.clone(),
        colour: w.colour,
        key: Key::Square,
    }
}

/// The figure: title strip, one legend, the body (returned), the footer with the command and
/// the machine.
fn frame<'a>(root: &Area<'a>, r: &Report, title: &str, legend: &[LegendItem]) -> Result<Area<'a>> {
    pl!(root.fill(&WHITE));
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    pl!(root.draw(&Text::new(
        title.to_string(),
        (14, 10),
        TextStyle::from(FontDesc::new(FontFamily::SansSerif, 17.0, FontStyle::Bold))
    )));
    // The legend, one line (two when long).
    let (mut x, mut y) = (16, 44);
    for it in legend {
        let lw = text_width(&it.label, 13.0) + 44;
        if x + lw > w - 10 {
            x = 16;
            y += 20;
        }
        match it.key {
            Key::Square => rect(root, (x, y - 6), (x + 14, y + 6), it.colour.filled())?,
            Key::Line => pl!(root.draw(&PathElement::new(
                vec![(x - 2, y), (x + 22, y)],
                it.colour.stroke_width(3)
            ))),
            Key::Dashed => pl!(root.draw(&DashedPathElement::new(
                vec![(x - 2, y), (x + 22, y)],
                5,
                3,
                it.colour.stroke_width(2)
            ))),
        }
        let off = if it.key == Key::Square { 20 } else { 28 };
        text(
            root,
            &it.label,
            (x + off, y),
            13.0,
            (HPos::Left, VPos::Center),
        )?;
        x += lw;
    }
    let mut footer = vec![format!("Command: {}", r.command)];
    footer.push(match &r.machine {
        Some(m) => format!(
            "Machine: {}. Data: docs/bench/{}.json",
            m.describe(),
            r.name
        ),
        None => format!(
            "Machine: not recorded with this run. Data: docs/bench/{}.json",
            r.name
        ),
    });
    let fh = 16 * footer.len() as i32 + 10;
    pl!(root.draw(&PathElement::new(
        vec![(10, h - fh), (w - 10, h - fh)],
        RGBColor(210, 210, 210).stroke_width(1)
    )));
    for (i, l) in footer.iter().enumerate() {
        text_in(
            root,
            l,
            (14, h - fh + 6 + 16 * i as i32),
            12.0,
            (HPos::Left, VPos::Top),
            &GREY,
        )?;
    }
    let top = y + 16;
    Ok(root.margin(top as u32, fh as u32 + 4, 4, 4))
}

/// One bar: its value (None: nothing measured, only the label is drawn), colour and the text above
/// it (lines, top first).
struct Bar {
    value: Option<f64>,
    colour: RGBColor,
    label: Vec<String>,
}

/// A group of bars with the lines under it.
struct Group {
    lines: Vec<String>,
    bars: Vec<Bar>,
}

struct BarPanel<'f> {
    title: String,
    y_desc: String,
    y_fmt: &'f dyn Fn(f64) -> String,
    /// The top of the axis (None: from the data).
    top: Option<f64>,
    groups: Vec<Group>,
}

/// Grouped vertical bars, labelled with their values, groups named under the axis.
fn draw_bars(area: &Area, p: &BarPanel) -> Result<()> {
    let n = p.groups.len().max(1) as f64;
    let max = p
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().filter_map(|b| b.value))
        .fold(0.0, f64::max);
    let lines = p.groups.iter().map(|g| g.lines.len()).max().unwrap_or(1) as u32;
    let label_lines = p
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.label.len()))
        .max()
        .unwrap_or(1) as f64;
    let top = p.top.unwrap_or(max * (1.12 + 0.07 * label_lines)).max(1e-9);
    let mut chart = pl!(ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 15))
        .margin(8)
        .margin_right(14)
        .x_label_area_size(16 * lines + 10)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n, 0f64..top));
    pl!(chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_label_formatter(&|v| (p.y_fmt)(*v))
        .y_desc(p.y_desc.as_str())
        .light_line_style(WHITE)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw());
    for (g, grp) in p.groups.iter().enumerate() {
        let k = grp.bars.len().max(1) as f64;
        let slot = (0.8 / k).min(0.3);
        let left = g as f64 + 0.5 - slot * k / 2.0;
        for (i, b) in grp.bars.iter().enumerate() {
            let x0 = left + i as f64 * slot + slot * 0.08;
            let x1 = x0 + slot * 0.84;
            let v = b.value.unwrap_or(0.0).min(top);
            if v > 0.0 {
                pl!(chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x1, v)],
                    b.colour.filled()
                ))));
            }
            let (px, py) = chart.backend_coord(&((x0 + x1) / 2.0, v));
            for (j, l) in b.label.iter().rev().enumerate() {
                text(
                    area,
                    l,
                    (px, py - 3 - 14 * j as i32),
                    12.0,
                    (HPos::Center, VPos::Bottom),
                )?;
            }
        }
        let (px, py) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        for (j, l) in grp.lines.iter().enumerate() {
            text(
                area,
                l,
                (px, py + 6 + 16 * j as i32),
                if j == 0 { 13.0 } else { 12.0 },
                (HPos::Center, VPos::Top),
            )?;
        }
    }
    Ok(())
}

/// Render the chart of `r` (by its name) to `path`.
pub fn render(r: &Report, path: &Path) -> Result<()> {
    let height = if r.name == "legit" {
        HEIGHT + 100
    } else {
        HEIGHT
    };
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    match r.name.as_str() {
        "per_packet" => per_packet(r, &root)?,
        "flood" | "host_flood" => flood(r, &root)?,
        "legit" => legit(r, &root)?,
        "quality" => quality(r, &root)?,
        "scale" => scale(r, &root)?,
        n => bail!("no chart for a report named {n:?}"),
    }
    pl!(root.present());
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// A ratio: 0.90x, 3.6x, 30x.
fn x(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}x")
    } else if v >= 1.5 {
        format!("{v:.1}x")
    } else {
        format!("{v:.2}x")
    }
}

// ---------------------------------------------------------------------------------------------
// Per packet: the three programs per family and SYN profile, and the stages of synwall's SYN.

/// A program's bar: who, ns per packet, net ns, its time over the helper's.
type PacketBar = (Who, f64, f64, f64);
/// Family, SYN profile, the programs' bars.
type PacketGroup = (String, String, Vec<PacketBar>);

fn per_packet(r: &Report, root: &Area) -> Result<()> {
    let d = &r.data;
    let rows = arr(d, "rows")?;
    // Groups in the data's order of (family, profile); bars in the data's order of programs.
    let mut groups: Vec<PacketGroup> = Vec::new();
    let mut whos: Vec<Who> = Vec::new();
    for row in rows {
        let fam = row["family"].as_str().context("family")?.to_string();
        let prof = profile(&row["profile"])?;
        let who = program(&row["program"])?;
        if !whos.iter().any(|w| w.label == who.label) {
            whos.push(who.clone());
        }
        let ns = need(row, &["ns"])?;
        let net = need(row, &["net_ns"])?;
        let vs_helper = num(row, &["ratio_vs_helper"]).unwrap_or(f64::NAN);
        match groups.iter_mut().find(|g| g.0 == fam && g.1 == prof) {
            Some(g) => g.2.push((who, ns, net, vs_helper)),
            None => groups.push((fam, prof, vec![(who, ns, net, vs_helper)])),
        }
    }
    let synwall = whos.first().context("no program in the data")?.clone();
    let helper = whos.get(1).context("one program only")?.clone();
    let g = d.get("goals").context("goals")?;
    let title = format!(
        "Per SYN: {} needs {} the time of the {} program (IPv4, Linux SYN), {} a bare XDP_TX",
        synwall.label,
        x(need(g, &["vs_helper"])?),
        helper.label,
        x(need(g, &["vs_bare"])?)
    );
    let legend: Vec<LegendItem> = whos.iter().map(square).collect();
    let body = frame(root, r, &title, &legend)?;
    let (left, right) = body.split_horizontally(640);
    let fmt = |v: f64| tick(v);
    draw_bars(
        &left,
        &BarPanel {
            title: format!(
                "ns per SYN answered, lower is better; over {}: its time / {}'s",
                synwall.label, helper.label
            ),
            y_desc: "ns per packet".into(),
            y_fmt: &fmt,
            top: None,
            groups: groups
                .iter()
                .map(|(fam, prof, bars)| Group {
                    lines: vec![fam.clone(), format!("{prof} SYN")],
                    bars: bars
                        .iter()
                        .map(|(w, ns, _, vs)| Bar {
                            value: Some(*ns),
                            colour: w.colour,
                            label: if w.label == synwall.label {
                                vec![x(*vs), format!("{ns:.0}")]
                            } else {
                                vec![format!("{ns:.0}")]
                            },
                        })
                        .collect(),
                })
                .collect(),
        },
    )?;
    stages(r, &right, &synwall, &groups)
}

/// Stacked bars: where synwall's SYN goes, beside the other programs' whole cost (net ns, Linux
/// default SYN).
fn stages(r: &Report, area: &Area, synwall: &Who, groups: &[PacketGroup]) -> Result<()> {
    let st = arr(&r.data, "edge_stages")?;
    // Per family: the timed stages in order, then the full SYN's net ns, then the derived rest.
    let mut fams: Vec<String> = Vec::new();
    for s in st {
        let f = s["family"].as_str().context("family")?.to_string();
        if !fams.contains(&f) {
            fams.push(f);
        }
    }
    struct Cat {
        label: String,
        segs: Vec<(f64, RGBColor)>,
        total: f64,
    }
    let mut cats = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let first_profile = groups.first().map(|g| g.1.clone()).unwrap_or_default();
    for f in &fams {
        let mine: Vec<&Value> = st.iter().filter(|s| s["family"] == f.as_str()).collect();
        if mine.len() < 3 {
            bail!("edge_stages of {f}: fewer than three entries");
        }
        let total = need(mine[mine.len() - 2], &["ns"])?;
        let mut segs = Vec::new();
        let mut prev = 0.0;
        let timed = &mine[..mine.len() - 2];
        let rest = mine[mine.len() - 1];
        for (i, s) in timed.iter().chain(std::iter::once(&rest)).enumerate() {
            let ns = need(s, &["ns"])?;
            let seg = if i < timed.len() { ns - prev } else { ns };
            prev = ns;
            let name = s["path"].as_str().context("path")?.trim_start_matches("= ");
            if names.len() <= i {
                names.push(name.to_string());
            }
            segs.push((seg.max(0.0), STAGE_SHADES[i.min(STAGE_SHADES.len() - 1)]));
        }
        cats.push(Cat {
            label: format!("{} {f}", synwall.label),
            segs,
            total,
        });
        // The other programs, whole, on the same SYN.
        if let Some(g) = groups.iter().find(|g| &g.0 == f && g.1 == first_profile) {
            for (w, _, net, _) in g.2.iter().filter(|b| b.0.label != synwall.label) {
                cats.push(Cat {
                    label: format!("{} {f}", w.label),
                    segs: vec![(*net, w.colour)],
                    total: *net,
                });
            }
        }
    }
    // Legend of the stages above the chart.
    let (leg, plot) = area.split_vertically(28 + 17 * names.len() as u32);
    let b = leg.get_base_pixel();
    text(
        &leg,
        &format!(
            "Where the {first_profile} SYN's time goes (net ns: the test run's own cost removed)"
        ),
        (b.0 + 8, b.1 + 6),
        15.0,
        (HPos::Left, VPos::Top),
    )?;
    for (i, n) in names.iter().enumerate() {
        let y = b.1 + 34 + 17 * i as i32;
        rect(
            &leg,
            (b.0 + 12, y - 6),
            (b.0 + 24, y + 6),
            STAGE_SHADES[i.min(STAGE_SHADES.len() - 1)].filled(),
        )?;
        text(&leg, n, (b.0 + 30, y), 12.0, (HPos::Left, VPos::Center))?;
    }
    let max = cats.iter().map(|c| c.total).fold(0.0, f64::max) * 1.15;
    let n = cats.len() as f64;
    let mut chart = pl!(ChartBuilder::on(&plot)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(36)
        .y_label_area_size(130)
        .build_cartesian_2d(0f64..max.max(1.0), 0f64..n));
    pl!(chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .x_desc("ns per SYN, net")
        .light_line_style(WHITE)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw());
    for (i, c) in cats.iter().enumerate() {
        let y1 = n - i as f64 - 0.15;
        let y0 = n - i as f64 - 0.85;
        let mut x = 0.0;
        for (v, colour) in &c.segs {
            pl!(chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y0), (x + v, y1)],
                colour.filled()
            ))));
            let (a, ym) = chart.backend_coord(&(x, (y0 + y1) / 2.0));
            let (z, _) = chart.backend_coord(&(x + v, (y0 + y1) / 2.0));
            let s = format!("{v:.0}");
            if c.segs.len() > 1 && z - a > text_width(&s, 11.0) + 4 {
                let tc = if colour == &STAGE_SHADES[STAGE_SHADES.len() - 1]
                    || colour == &STAGE_SHADES[2]
                {
                    WHITE
                } else {
                    BLACK
                };
                text_in(
                    &plot,
                    &s,
                    ((a + z) / 2, ym),
                    11.0,
                    (HPos::Center, VPos::Center),
                    &tc,
                )?;
            }
            x += v;
        }
        let (px, py) = chart.backend_coord(&(c.total, (y0 + y1) / 2.0));
        text(
            &plot,
            &format!("{:.0}", c.total),
            (px + 4, py),
            12.0,
            (HPos::Left, VPos::Center),
        )?;
        let (lx, _) = chart.backend_coord(&(0.0, 0.0));
        text(
            &plot,
            &c.label,
            (lx - 6, py),
            12.0,
            (HPos::Right, VPos::Center),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Flood: SYN+ACKs per second through the run, and per second of the defender's CPU.

fn flood(r: &Report, root: &Area) -> Result<()> {
    let rows = rows(r)?;
    let whos: Vec<Who> = rows
        .iter()
        .map(|x| defense(&x["defense"]))
        .collect::<Result<_>>()?;
    let rate = |i: usize| num(&rows[i], &["rates", "synack_pps"]).unwrap_or(f64::NAN);
    let per = |i: usize| num(&rows[i], &["per_defender_cpu_second"]).unwrap_or(f64::NAN);
    let title = if r.name == "host_flood" && rows.len() >= 3 {
        format!(
            "One host, one defender CPU: per CPU-second {} answers {} the SYN+ACKs of {} and {} those of {}",
            whos[0].label,
            x(ratio(per(0), per(1))),
            whos[1].label,
            x(ratio(per(0), per(2))),
            whos[2].label
        )
    } else if rows.len() >= 3 {
        format!(
            "Flood on one core: {} answers {} the SYN+ACKs of {} and {} those of {}",
            whos[0].label,
            x(ratio(rate(0), rate(1))),
            whos[1].label,
            x(ratio(rate(0), rate(2))),
            whos[2].label
        )
    } else {
        r.title.clone()
    };
    let mut legend: Vec<LegendItem> = whos.iter().map(square).collect();
    let timeline = rows.iter().any(|x| x.get("timeline").is_some());
    if timeline {
        legend.push(LegendItem {
            label: "SYN+ACKs back (line)".into(),
            colour: GREY,
            key: Key::Line,
        });
        legend.push(LegendItem {
            label: "SYNs offered (dashed)".into(),
            colour: GREY,
            key: Key::Dashed,
        });
    }
    let body = frame(root, r, &title, &legend)?;
    let (left, right) = body.split_horizontally(if timeline { 700 } else { 0 });
    if timeline {
        flood_timeline(&left, rows, &whos)?;
    }
    // Bars: the measured rate and the rate per second of the defender's CPU time.
    let mut groups = vec![Group {
        lines: vec![
            "SYN+ACKs back per second".into(),
            "(under each: % of the SYNs offered)".into(),
        ],
        bars: rows
            .iter()
            .zip(&whos)
            .map(|(row, w)| {
                let v = num(row, &["rates", "synack_pps"]);
                let share = ratio(
                    v.unwrap_or(f64::NAN),
                    num(row, &["rates", "syn_offered_pps"]).unwrap_or(f64::NAN),
                );
                Bar {
                    value: v,
                    colour: w.colour,
                    label: vec![
                        v.map_or("n/a".into(), fmt_num),
                        format!("{:.0}%", 100.0 * share),
                    ],
                }
            })
            .collect(),
    }];
    if rows
        .iter()
        .any(|x| num(x, &["per_defender_cpu_second"]).is_some())
    {
        groups.push(Group {
            lines: vec![
                "per second of defender CPU time".into(),
                "(under each: how busy that CPU was)".into(),
            ],
            bars: rows
                .iter()
                .zip(&whos)
                .map(|(row, w)| {
                    let v = num(row, &["per_defender_cpu_second"]);
                    // The one-host flood counts the defender's thread and softirq time only.
                    let busy = match (num(row, &["napi_busy"]), num(row, &["softirq_busy"])) {
                        (Some(n), Some(s)) => n + s,
                        _ => num(row, &["defender_cpu_busy"]).unwrap_or(f64::NAN),
                    };
                    Bar {
                        value: v,
                        colour: w.colour,
                        label: vec![
                            v.map_or("n/a".into(), fmt_num),
                            format!("{:.0}%", 100.0 * busy),
                        ],
                    }
                })
                .collect(),
        });
    }
    let fmt = |v: f64| tick(v);
    draw_bars(
        &right,
        &BarPanel {
            title: "Answered, higher is better".into(),
            y_desc: "SYN+ACKs per second".into(),
            y_fmt: &fmt,
            top: None,
            groups,
        },
    )
}

fn flood_timeline(area: &Area, rows: &[Value], whos: &[Who]) -> Result<()> {
    // Time relative to the flood's start; each run's samples are rates over the interval ending
    // at `t`.
    let mut series = Vec::new();
    let (mut t_min, mut t_max, mut y_max, mut dur) = (0f64, 1f64, 1f64, 0f64);
    for row in rows {
        let w = arr(row, "flood_window").ok();
        let start = w.and_then(|w| w.first()?.as_f64()).unwrap_or(0.0);
        let stop = w.and_then(|w| w.get(1)?.as_f64()).unwrap_or(start);
        dur = dur.max(stop - start);
        let mut back = Vec::new();
        let mut offered = Vec::new();
        for s in arr(row, "timeline")? {
            let t = need(s, &["t"])? - start;
            let a = need(s, &["synack_pps"])?;
            let o = need(s, &["syn_offered_pps"])?;
            t_min = t_min.min(t);
            t_max = t_max.max(t);
            y_max = y_max.max(a).max(o);
            back.push((t, a));
            offered.push((t, o));
        }
        series.push((back, offered));
    }
    let notes = rows
        .iter()
        .filter(|r| num(r, &["drop_syn_budget"]).is_some_and(|n| n > 0.0))
        .count();
    let top = y_max * (1.1 + 0.08 * notes as f64);
    let mut chart = pl!(ChartBuilder::on(area)
        .caption(
            "SYN+ACKs per second through each run (one run per defence)",
            ("sans-serif", 15)
        )
        .margin(8)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(t_min..t_max, 0f64..top));
    pl!(chart.draw_series(std::iter::once(Rectangle::new(
        [(0.0, 0.0), (dur, top)],
        RGBColor(243, 243, 243).filled()
    ))));
    pl!(chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.0} s"))
        .y_label_formatter(&|v| tick(*v))
        .x_desc("time since the flood started")
        .y_desc("packets per second")
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw());
    let (px, py) = chart.backend_coord(&(0.0, top));
    text_in(
        area,
        "flood on",
        (px + 6, py + 4),
        12.0,
        (HPos::Left, VPos::Top),
        &GREY,
    )?;
    let (qx, _) = chart.backend_coord(&(dur, top));
    text_in(
        area,
        "flood off",
        (qx + 6, py + 4),
        12.0,
        (HPos::Left, VPos::Top),
        &GREY,
    )?;
    // What the defences themselves refused, when recorded: a plateau may be a budget, not a
    // ceiling.
    let (bx, by) = chart.backend_coord(&(t_max, top));
    let mut k = 0;
    for (row, w) in rows.iter().zip(whos) {
        if let Some(n) = num(row, &["drop_syn_budget"]).filter(|n| *n > 0.0) {
            text_in(
                area,
                &format!(
                    "{}: {} SYNs over its reflection budget dropped unanswered",
                    w.label,
                    count(n)
                ),
                (bx - 8, by + 22 + 16 * k),
                12.0,
                (HPos::Right, VPos::Top),
                &w.colour,
            )?;
            k += 1;
        }
    }
    for ((back, offered), w) in series.iter().zip(whos) {
        pl!(chart.draw_series(std::iter::once(DashedPathElement::new(
            offered.clone(),
            5,
            4,
            w.colour.mix(0.8).stroke_width(1)
        ))));
        pl!(chart.draw_series(std::iter::once(PathElement::new(
            back.clone(),
            w.colour.stroke_width(3)
        ))));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Legit traffic: the connect-latency distribution per defence, quiet and flooded, and completion.

fn share_text(done: f64, tried: f64) -> String {
    let p = 100.0 * ratio(done, tried);
    if done == tried || done == 0.0 || !p.is_finite() {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn legit(r: &Report, root: &Area) -> Result<()> {
    let rows = rows(r)?;
    let mut whos: Vec<Who> = Vec::new();
    for row in rows {
        let w = defense(&row["defense"])?;
        if !whos.iter().any(|x| x.label == w.label) {
            whos.push(w);
        }
    }
    let secs = rows
        .first()
        .and_then(|x| num(x, &["seconds"]))
        .context("legit: no measurement length (seconds) in the data")?;
    let mut title = format!("A legit client under flood, connections made in {secs:.0} s:");
    for (i, row) in rows.iter().filter(|x| x["flood"] == true).enumerate() {
        let w = defense(&row["defense"])?;
        let c = &row["conns"];
        let done = need(c, &["completed"])?;
        let tried = need(c, &["tried"])?;
        title.push_str(&format!(
            "{} {} {done:.0}{}",
            if i == 0 { "" } else { "," },
            w.label,
            if done < tried {
                format!(" ({} of tried)", share_text(done, tried))
            } else {
                String::new()
            }
        ));
    }
    let mut legend: Vec<LegendItem> = whos.iter().map(square).collect();
    legend.push(LegendItem {
        label: "flooded (line)".into(),
        colour: GREY,
        key: Key::Line,
    });
    legend.push(LegendItem {
        label: "quiet (dashed)".into(),
        colour: GREY,
        key: Key::Dashed,
    });
    let body = frame(root, r, &title, &legend)?;
    let (left, right) = body.split_horizontally(700);
    cdf(&left, rows)?;
    let (top, bottom) = right.split_vertically(right.dim_in_pixel().1 / 2);
    let group = |fl: bool, f: &dyn Fn(f64, f64) -> (f64, String)| -> Result<Group> {
        Ok(Group {
            lines: vec![if fl { "flooded" } else { "quiet" }.to_string()],
            bars: rows
                .iter()
                .filter(|x| x["flood"] == fl)
                .map(|row| {
                    let w = defense(&row["defense"])?;
                    let c = &row["conns"];
                    let (v, label) = f(need(c, &["completed"])?, need(c, &["tried"])?);
                    Ok(Bar {
                        value: Some(v),
                        colour: w.colour,
                        label: vec![label],
                    })
                })
                .collect::<Result<_>>()?,
        })
    };
    // Completion: the share of tried connections that completed.
    let share = |done: f64, tried: f64| {
        let p = 100.0 * ratio(done, tried);
        (if p.is_finite() { p } else { 0.0 }, share_text(done, tried))
    };
    draw_bars(
        &top,
        &BarPanel {
            title: "Completed, % of the connections tried".into(),
            y_desc: "% of tried".into(),
            y_fmt: &pct,
            top: Some(120.0),
            groups: vec![group(false, &share)?, group(true, &share)?],
        },
    )?;
    // How many: one client, each connection after the previous one, so a slow defence makes
    // fewer.
    let count = |done: f64, _: f64| (done, format!("{done:.0}"));
    let fmt = |v: f64| tick(v);
    draw_bars(
        &bottom,
        &BarPanel {
            title: format!("Connections completed in {secs:.0} s (one client, one after another)"),
            y_desc: "connections".into(),
            y_fmt: &fmt,
            top: None,
            groups: vec![group(false, &count)?, group(true, &count)?],
        },
    )
}

fn cdf(area: &Area, rows: &[Value]) -> Result<()> {
    let mut lines = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for row in rows {
        let w = defense(&row["defense"])?;
        let c = &row["conns"];
        let share = ratio(need(c, &["completed"])?, need(c, &["tried"])?);
        let q = arr(c, "quantiles_ms").context(
            "legit: no latency distribution in the data (runs before it was recorded): rerun `synwall-lab bench legit`",
        )?;
        let mut pts = Vec::new();
        for p in q {
            let (Some(pc), Some(v)) = (
                p.get(0).and_then(Value::as_f64),
                p.get(1).and_then(Value::as_f64),
            ) else {
                continue;
            };
            if v > 0.0 && v.is_finite() && share.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
                pts.push((v, pc * share));
            }
        }
        lines.push((w, row["flood"] == true, pts));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.1, 1000.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let mut chart = pl!(ChartBuilder::on(area)
        .caption(
            "Connect latency (SYN to SYN+ACK): share of tried connections made within x",
            ("sans-serif", 15)
        )
        .margin(8)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64));
    pl!(chart
        .configure_mesh()
        .x_labels(12)
        .y_labels(11)
        .x_label_formatter(&|v| ms(*v))
        .y_label_formatter(&|v| pct(*v))
        .x_desc("connect latency, log scale (further left is faster)")
        .y_desc("% of tried connections")
        .light_line_style(RGBColor(246, 246, 246))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw());
    let (bx, by) = chart.backend_coord(&(hi, 0.0));
    let mut k = 0;
    for row in rows.iter().rev() {
        if let Some(n) = num(row, &["drop_syn_budget"]).filter(|n| *n > 0.0) {
            let w = defense(&row["defense"])?;
            text_in(
                area,
                &format!(
                    "{} {}: {} SYNs over their prefix's reflection budget dropped unanswered",
                    w.label,
                    if row["flood"] == true {
                        "flooded"
                    } else {
                        "quiet"
                    },
                    count(n)
                ),
                (bx - 8, by - 8 - 16 * k),
                12.0,
                (HPos::Right, VPos::Bottom),
                &w.colour,
            )?;
            k += 1;
        }
    }
    for (w, fl, pts) in &lines {
        if pts.is_empty() {
            continue;
        }
        if *fl {
            pl!(chart.draw_series(std::iter::once(PathElement::new(
                pts.clone(),
                w.colour.stroke_width(3)
            ))));
        } else {
            pl!(chart.draw_series(std::iter::once(DashedPathElement::new(
                pts.clone(),
                6,
                4,
                w.colour.stroke_width(2)
            ))));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Quality: bulk throughput per defence with the options its connections got.

fn opts_text(m: &Value) -> Vec<String> {
    let s = &m["server"];
    let ws = match s["wscale"].as_array() {
        Some(a) if a.len() == 2 => format!("wscale {},{}", a[0], a[1]),
        _ => "no wscale".into(),
    };
    let yes = |k: &str, name: &str| {
        if s[k] == true {
            name.to_string()
        } else {
            format!("no {name}")
        }
    };
    vec![
        format!("MSS {}, {ws}", s["mss"]),
        format!("{}, {}", yes("sack", "SACK"), yes("ts", "TS")),
    ]
}

fn quality(r: &Report, root: &Area) -> Result<()> {
    let d = &r.data;
    let bulk = arr(d, "bulk")?;
    let matrix = arr(d, "matrix")?;
    let whos: Vec<Who> = bulk
        .iter()
        .map(|b| defense(&b["defense"]))
        .collect::<Result<_>>()?;
    let rate = |i: usize| num(&bulk[i], &["bytes_per_s"]).unwrap_or(f64::NAN);
    let title = if bulk.len() >= 3 {
        format!(
            "Bulk over 50 ms RTT and 0.1% loss, client without timestamps: {} {} {}, {} {}",
            whos[0].label,
            x(ratio(rate(0), rate(1))),
            whos[1].label,
            x(ratio(rate(0), rate(2))),
            whos[2].label
        )
    } else {
        r.title.clone()
    };
    let body = frame(
        root,
        r,
        &title,
        &whos.iter().map(square).collect::<Vec<_>>(),
    )?;
    let (left, right) = body.split_horizontally(470);
    // The bulk client has no timestamps: the options under each bar are that profile's.
    let bulk_profile = "no timestamps";
    let groups = bulk
        .iter()
        .zip(&whos)
        .map(|(b, w)| {
            let mut lines = vec![w.label.clone()];
            if let Some(m) = matrix
                .iter()
                .find(|m| m["defense"] == b["defense"] && m["profile"] == bulk_profile)
            {
                lines.extend(opts_text(m));
            }
            let v = num(b, &["bytes_per_s"]).map(|v| v / 1e6);
            Group {
                lines,
                bars: vec![Bar {
                    value: v,
                    colour: w.colour,
                    label: vec![v.map_or("n/a".into(), |v| format!("{v:.1} MB/s"))],
                }],
            }
        })
        .collect();
    let fmt = |v: f64| format!("{} MB/s", tick(v));
    draw_bars(
        &left,
        &BarPanel {
            title: "Bulk download, higher is better; options the server got".into(),
            y_desc: "MB/s after the handshake".into(),
            y_fmt: &fmt,
            top: None,
            groups,
        },
    )?;
    let defs: Vec<Value> = bulk.iter().map(|b| b["defense"].clone()).collect();
    options_grid(&right, matrix, &defs, &whos)
}

/// The options each defence's server socket got per client profile; cells that lost something
/// the same client gets without cookies are tinted.
fn options_grid(area: &Area, matrix: &[Value], defs: &[Value], whos: &[Who]) -> Result<()> {
    let mut profiles: Vec<&str> = Vec::new();
    for m in matrix {
        let p = m["profile"].as_str().context("profile")?;
        if !profiles.contains(&p) {
            profiles.push(p);
        }
    }
    let b = area.get_base_pixel();
    let (w, _) = area.dim_in_pixel();
    text(
        area,
        "Options the server socket got (TCP_INFO), per client profile",
        (b.0 + 10, b.1 + 8),
        15.0,
        (HPos::Left, VPos::Top),
    )?;
    let label_w = 130;
    let col = (w as i32 - label_w - 20) / whos.len().max(1) as i32;
    let row_h = 44;
    let y0 = b.1 + 64;
    // The reference: no cookies, when measured.
    let nc = serde_json::to_value(Defense::NoCookies)?;
    let reference = defs.iter().position(|d| *d == nc);
    for (j, who) in whos.iter().enumerate() {
        let cx = b.0 + label_w + col * j as i32 + col / 2;
        rect(
            area,
            (cx - col / 2 + 2, y0 - 26),
            (cx + col / 2 - 2, y0 - 4),
            who.colour.filled(),
        )?;
        text_in(
            area,
            &who.label,
            (cx, y0 - 15),
            12.0,
            (HPos::Center, VPos::Center),
            &WHITE,
        )?;
    }
    for (i, p) in profiles.iter().enumerate() {
        let y = y0 + row_h * i as i32;
        text(
            area,
            p,
            (b.0 + label_w - 8, y + row_h / 2),
            12.0,
            (HPos::Right, VPos::Center),
        )?;
        let cell = |j: usize| {
            matrix
                .iter()
                .find(|m| m["profile"] == *p && m["defense"] == defs[j])
        };
        for j in 0..whos.len() {
            let Some(m) = cell(j) else { continue };
            // Against the same client without cookies: an option lost (or a smaller MSS) is
            // red, another value (a different window-scale shift) yellow.
            let against = reference.filter(|&k| k != j).and_then(cell);
            let (lost, other) = against.map_or((false, false), |r| {
                let (a, b) = (&m["server"], &r["server"]);
                let lost = (a["sack"] != b["sack"] && b["sack"] == true)
                    || (a["ts"] != b["ts"] && b["ts"] == true)
                    || (a["wscale"].is_null() && !b["wscale"].is_null())
                    || a["mss"].as_u64() < b["mss"].as_u64();
                (lost, a != b)
            });
            let bg = if lost {
                LOST
            } else if other {
                OTHER
            } else {
                RGBColor(232, 244, 232)
            };
            let x0 = b.0 + label_w + col * j as i32;
            rect(
                area,
                (x0 + 2, y + 2),
                (x0 + col - 2, y + row_h - 2),
                bg.filled(),
            )?;
            for (k, l) in opts_text(m).iter().enumerate() {
                text(
                    area,
                    l,
                    (x0 + col / 2, y + 13 + 16 * k as i32),
                    12.0,
                    (HPos::Center, VPos::Center),
                )?;
            }
        }
    }
    let y = y0 + row_h * profiles.len() as i32 + 10;
    for (i, (c, what)) in [
        (
            LOST,
            "an option lost or a smaller MSS than the same client gets without cookies",
        ),
        (
            OTHER,
            "another value than without cookies (e.g. the window-scale shift)",
        ),
    ]
    .iter()
    .enumerate()
    {
        let y = y + 18 * i as i32;
        rect(area, (b.0 + 12, y), (b.0 + 24, y + 12), c.filled())?;
        text(
            area,
            what,
            (b.0 + 30, y + 6),
            12.0,
            (HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}

const LOST: RGBColor = RGBColor(250, 200, 180);
const OTHER: RGBColor = RGBColor(252, 240, 190);

// ---------------------------------------------------------------------------------------------
// Scale: one edge vs two behind ECMP.

fn scale(r: &Report, root: &Area) -> Result<()> {
    let d = &r.data;
    let one = need(d, &["one_edge", "rates", "synack_pps"])?;
    let two = need(d, &["two_edges", "rates", "synack_pps"])?;
    let per_core = need(d, &["per_core_pps"])?;
    let cores = need(d, &["cores_per_100g"])?;
    let sw = defense(&serde_json::to_value(Defense::Synwall)?)?;
    let title = format!(
        "Scale: one edge answers {} SYN+ACKs/s, two edges {} (one generator, two shared cores); {} per edge CPU-second",
        fmt_num(one),
        fmt_num(two),
        fmt_num(per_core)
    );
    let offered = Who {
        label: "SYNs offered".into(),
        colour: OFFERED,
    };
    let body = frame(
        root,
        r,
        &title,
        &[
            square(&offered),
            square(&Who {
                label: format!("SYN+ACKs back ({})", sw.label),
                colour: sw.colour,
            }),
        ],
    )?;
    let pair = |k: &str| -> Result<Vec<Bar>> {
        let o = need(d, &[k, "rates", "syn_offered_pps"])?;
        let a = need(d, &[k, "rates", "synack_pps"])?;
        Ok(vec![
            Bar {
                value: Some(o),
                colour: OFFERED,
                label: vec![fmt_num(o)],
            },
            Bar {
                value: Some(a),
                colour: sw.colour,
                label: vec![fmt_num(a)],
            },
        ])
    };
    let groups = vec![
        Group {
            lines: vec!["one edge".into(), "(ECMP off)".into()],
            bars: pair("one_edge")?,
        },
        Group {
            lines: vec!["two edges".into(), "(ECMP)".into()],
            bars: pair("two_edges")?,
        },
        Group {
            lines: vec![
                "one edge, per second".into(),
                "of its CPU time".into(),
                format!("= {cores:.0} cores per 100 GbE"),
            ],
            bars: vec![Bar {
                value: Some(per_core),
                colour: sw.colour,
                label: vec![fmt_num(per_core)],
            }],
        },
    ];
    let fmt = |v: f64| tick(v);
    draw_bars(
        &body,
        &BarPanel {
            title: "Packets per second, higher is better".into(),
            y_desc: "packets per second".into(),
            y_fmt: &fmt,
            top: None,
            groups,
        },
    )
}
