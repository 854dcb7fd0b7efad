//! Renderings of a [`RecoveryTable`] beyond Markdown/CSV/JSON: bar charts like the paper's
//! Figures 1–6 (SVG and PNG, drawn with `plotters`) and one self-contained HTML page (template
//! rendered with `minijinja`, HTML auto-escaped; CSS and the SVG charts inline, no external
//! resource, so the file can be mailed or archived as one artefact).
//!
//! Text in charts needs a TrueType font for its metrics (plotters' `ab_glyph` backend): the first
//! of `$QUANTLAB_FONT` and the usual DejaVu / Liberation / Noto paths that exists is used. Without
//! one the charts are skipped and the report says so (the tables are still written).

use crate::recovery::{RecoveryTable, AVERAGE_ROW};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Font files tried, in order, after `$QUANTLAB_FONT`.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Register a sans-serif font with plotters once; the path used, or an error listing the paths
/// tried.
pub fn ensure_font() -> Result<PathBuf> {
    static FONT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut tried = Vec::new();
        let env = std::env::var_os("QUANTLAB_FONT").map(PathBuf::from);
        for p in env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
        {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(p);
                }
            }
            tried.push(p.display().to_string());
        }
        Err(format!(
            "no usable TrueType font for the charts (set QUANTLAB_FONT; tried {})",
            tried.join(", ")
        ))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One bar series: a run's label and one value per category (`None`: no bar), with an optional
/// error interval `(lo, hi)` per category.
struct Series {
    label: String,
    values: Vec<Option<f64>>,
    intervals: Vec<Option<(f64, f64)>>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Grouped bar chart: one group per category, one bar per series, optional whiskers, an optional
/// dashed reference line (100 % for recoveries).
fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[Series],
    reference: Option<f64>,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing chart `{title}`: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            s.values
                .iter()
                .flatten()
                .copied()
                .chain(s.intervals.iter().flatten().flat_map(|&(lo, hi)| [lo, hi]))
        })
        .chain(reference)
        .filter(|v| v.is_finite())
        .collect();
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    // Recoveries sit near 100: zoom on them, as the paper's figures do; scores start at 0.
    let pad = ((hi - lo) * 0.15).max(0.5);
    let (y0, y1) = if reference.is_some() {
        (lo - pad, hi + pad)
    } else {
        (0.0_f64.min(lo), hi + pad)
    };
    let k = categories.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..k as f64, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .y_label_formatter(&|y: &f64| format!("{y:.1}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let n = series.len().max(1);
    let width = 0.8 / n as f64;
    for (j, s) in series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let bars = s.values.iter().enumerate().filter_map(|(i, v)| {
            v.map(|v| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, y0), (x0 + width * 0.9, v)], color.filled())
            })
        });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let whiskers = s.intervals.iter().enumerate().filter_map(|(i, iv)| {
            iv.map(|(lo, hi)| {
                let x = i as f64 + 0.1 + (j as f64 + 0.45) * width;
                PathElement::new(
                    vec![(x, lo.max(y0)), (x, hi.min(y1))],
                    BLACK.stroke_width(2),
                )
            })
        });
        chart.draw_series(whiskers).map_err(err)?;
    }
    if let Some(r) = reference {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, r), (k as f64, r)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
    }
    // Category names under the groups, placed in pixels below the plotting area.
    let label_style =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, name) in categories.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, y0));
        root.draw(&Text::new(name.clone(), (px, py + 8), label_style.clone()))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Categories (tasks, then the Average) of a table.
fn categories(table: &RecoveryTable) -> Vec<String> {
    table.tasks()
}

/// Recovery series: one per compared run; near-random tasks get no bar; the whisker is the
/// bootstrap interval of the recovery when one was computed.
fn recovery_series(table: &RecoveryTable) -> Vec<Series> {
    let cats = categories(table);
    table
        .compared()
        .iter()
        .map(|run| Series {
            label: run.label.clone(),
            values: cats
                .iter()
                .map(|t| {
                    if table.is_near_random(t) {
                        None
                    } else {
                        table.recovery(t, &run.label)
                    }
                })
                .collect(),
            intervals: cats
                .iter()
                .map(|t| {
                    let b = table.bootstrap(t, &run.label)?;
                    Some((b.recovery_ci_lo?, b.recovery_ci_hi?))
                })
                .collect(),
        })
        .collect()
}

/// Score series: the baseline then the compared runs, whiskers = 95% CI.
fn score_series(table: &RecoveryTable) -> Vec<Series> {
    let cats = categories(table);
    std::iter::once(table.baseline())
        .chain(table.compared().iter())
        .map(|run| Series {
            label: run.label.clone(),
            values: cats.iter().map(|t| table.score(t, &run.label)).collect(),
            intervals: cats
                .iter()
                .map(|t| {
                    if t == AVERAGE_ROW {
                        None
                    } else {
                        table.ci95(t, &run.label)
                    }
                })
                .collect(),
        })
        .collect()
}

/// Chart size in pixels.
pub const CHART_SIZE: (u32, u32) = (960, 480);

/// The recovery chart (recovery % per task and run, 100 % dashed, bootstrap whiskers) as SVG
/// text. Errors: no usable font (see [`ensure_font`]) or a drawing failure.
pub fn recovery_svg(table: &RecoveryTable) -> Result<String> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        draw_bars(
            root,
            &format!("Recovery vs {} (%)", table.baseline().label),
            "recovery %",
            &categories(table),
            &recovery_series(table),
            Some(100.0),
        )?;
    }
    Ok(svg)
}

/// The score chart (score % per task and run with 95% CI whiskers) as SVG text.
pub fn scores_svg(table: &RecoveryTable) -> Result<String> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        draw_bars(
            root,
            "Scores (%), 95% CI",
            "score %",
            &categories(table),
            &score_series(table),
            None,
        )?;
    }
    Ok(svg)
}

/// Write the recovery chart as a PNG ([`CHART_SIZE`]) to `path`, atomically (a temporary `.png`
/// in the same folder, renamed over `path`).
pub fn write_recovery_png(table: &RecoveryTable, path: &Path) -> Result<()> {
    ensure_font()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".quantlab-chart-")
        .suffix(".png")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let root = BitMapBackend::new(tmp.path(), CHART_SIZE).into_drawing_area();
        draw_bars(
            root,
            &format!("Recovery vs {} (%)", table.baseline().label),
            "recovery %",
            &categories(table),
            &recovery_series(table),
            Some(100.0),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

const HTML_TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>quantlab report: recovery vs {{ baseline.label }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", DejaVu Sans, sans-serif; margin: 2em; color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.avg td { font-weight: bold; background: #f2f2f2; }
td.flag { color: #a15c00; font-style: italic; }
td.sig { color: #b00020; }
.meta, .note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; }
</style>
</head>
<body>
<h1>Accuracy recovery against <code>{{ baseline.label }}</code></h1>
<p class="meta">Baseline run <code>{{ baseline.run_id }}</code> (model <code>{{ baseline.model }}</code>).
Compared: {% for r in runs %}<code>{{ r.label }}</code> (run <code>{{ r.run_id }}</code>){% if not loop.last %}, {% endif %}{% endfor %}.
Scores in %; recovery % = run / baseline &times; 100 (arXiv 2411.02355, Tables 2 and 10).</p>
{% if lead %}{{ lead | safe }}<h2>Per sub-task</h2>
{% endif %}<table id="recovery">
<thead><tr><th>task</th><th>metric</th><th>{{ baseline.label }}</th>{% for r in runs %}<th>{{ r.label }}</th><th>{{ r.label }} recovery %</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr{% if row.task == average %} class="avg"{% endif %}><td>{{ row.task }}</td><td>{{ row.metric }}</td><td class="num">{{ row.baseline.score | pct }}</td>
{% for r in runs %}{% set c = row.runs[r.label] %}<td class="num">{{ c.score | pct }}</td>{% if row.near_random and c.recovery_pct is not none %}<td class="flag">near random</td>{% elif c.bootstrap and c.bootstrap.significant %}<td class="num sig">{{ c.recovery_pct | pct }} *</td>{% else %}<td class="num">{{ c.recovery_pct | pct }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</tbody>
</table>
<p class="note">Average: mean over {{ average_tasks | length }} task(s) every run has; its recovery is Average(run) / Average(baseline) &times; 100.
{% if near_random %}<em>near random</em>: the baseline is close to random guessing ({{ near_random | join(", ") }}), so the recovery is not quoted. {% endif %}
* : the difference from the baseline is significant at 95% (paired bootstrap over documents).</p>
<h2>Statistics</h2>
<table id="statistics">
<thead><tr><th>task</th><th>run</th><th>score %</th><th>95% CI</th><th>&Delta; pp vs baseline</th><th>&Delta; 95% CI</th><th>p</th><th>recovery 95% CI</th><th>docs paired</th></tr></thead>
<tbody>
{% for row in rows %}{% if row.task != average %}<tr><td>{{ row.task }}</td><td>{{ baseline.label }}</td><td class="num">{{ row.baseline.score | pct }}</td><td class="num">{{ row.baseline.ci95 | interval }}</td><td></td><td></td><td></td><td></td><td></td></tr>
{% for r in runs %}{% set c = row.runs[r.label] %}{% if c.score is not none %}<tr><td>{{ row.task }}</td><td>{{ r.label }}</td><td class="num">{{ c.score | pct }}</td><td class="num">{{ c.ci95 | interval }}</td>{% if c.bootstrap %}<td class="num">{{ c.bootstrap.diff_pp | signed }}</td><td class="num">[{{ c.bootstrap.diff_ci_lo | signed }}, {{ c.bootstrap.diff_ci_hi | signed }}]</td><td class="num">{{ c.bootstrap.p_value | p4 }}</td><td class="num">[{{ c.bootstrap.recovery_ci_lo | pct }}, {{ c.bootstrap.recovery_ci_hi | pct }}]</td><td class="num">{{ c.bootstrap.n_docs }}</td>{% else %}<td></td><td></td><td></td><td></td><td></td>{% endif %}</tr>{% endif %}
{% endfor %}{% endif %}{% endfor %}</tbody>
</table>
{{ extra | safe }}
{% if charts %}<h2>Charts</h2>
{% for c in charts %}<figure>{{ c | safe }}</figure>
{% endfor %}{% else %}<p class="note">Charts skipped: {{ chart_error }}</p>{% endif %}
<p class="meta">Generated by quantlab {{ version }}.</p>
</body>
</html>
"#;

/// The self-contained HTML page: recovery table, statistics table, and the SVG charts inline
/// (when a font is available; otherwise a note says why they are missing). All text from the run
/// records is HTML-escaped.
pub fn to_html(table: &RecoveryTable) -> Result<String> {
    to_html_with(table, "")
}

/// [`to_html`] with `extra` (already rendered, escaped HTML such as the similarity section)
/// placed before the charts.
pub fn to_html_with(table: &RecoveryTable, extra: &str) -> Result<String> {
    to_html_sections(table, "", extra)
}

/// [`to_html_with`] with `lead` (already rendered, escaped HTML such as the Open LLM Leaderboard
/// V2 section) placed above the recovery table, which then gets the heading "Per sub-task".
pub fn to_html_sections(table: &RecoveryTable, lead: &str, extra: &str) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_filter("pct", |v: minijinja::Value| -> String {
        f64::try_from(v).map_or("—".into(), |x| format!("{x:.2}"))
    });
    env.add_filter("p4", |v: minijinja::Value| -> String {
        f64::try_from(v).map_or("—".into(), |x| format!("{x:.4}"))
    });
    env.add_filter("signed", |v: minijinja::Value| -> String {
        f64::try_from(v).map_or("—".into(), |x| format!("{x:+.2}"))
    });
    env.add_filter("interval", |v: minijinja::Value| -> String {
        let lo = v
            .get_item_by_index(0)
            .ok()
            .and_then(|x| f64::try_from(x).ok());
        let hi = v
            .get_item_by_index(1)
            .ok()
            .and_then(|x| f64::try_from(x).ok());
        match (lo, hi) {
            (Some(lo), Some(hi)) => format!("[{lo:.2}, {hi:.2}]"),
            _ => "—".into(),
        }
    });
    env.add_template("report.html", HTML_TEMPLATE)?;
    let (charts, chart_error) = match (recovery_svg(table), scores_svg(table)) {
        (Ok(a), Ok(b)) => (vec![a, b], String::new()),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), format!("{e:#}")),
    };
    let mut ctx = table.to_json();
    let obj = ctx.as_object_mut().expect("to_json returns an object");
    obj.insert("average".into(), json!(AVERAGE_ROW));
    obj.insert("charts".into(), json!(charts));
    obj.insert("chart_error".into(), json!(chart_error));
    obj.insert("near_random".into(), json!(table.near_random_tasks()));
    obj.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    obj.insert("extra".into(), json!(extra));
    obj.insert("lead".into(), json!(lead));
    let html = env
        .get_template("report.html")?
        .render(minijinja::Value::from_serialize(&ctx))
        .context("rendering report.html")?;
    Ok(html)
}
