//! The soak's picture: one panel per run with usage, RSS, the limit, both
//! thresholds and the level over time.
//!
//! Text is drawn with a TrueType font read at run time from
//! [`FONT_PATH`]; without it the panels are drawn without any text.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::RunOutcome;

/// The font the labels are drawn with (Debian's fonts-dejavu-core).
pub(crate) const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const WIDTH_PX: u32 = 1400;
const PANEL_HEIGHT_PX: u32 = 520;
const MIB: f64 = 1024.0 * 1024.0;

const USAGE_COLOR: RGBColor = RGBColor(31, 119, 180);
const RSS_COLOR: RGBColor = RGBColor(214, 39, 40);
const LIMIT_COLOR: RGBColor = RGBColor(0, 0, 0);
const WARNING_COLOR: RGBColor = RGBColor(230, 160, 0);
const CRITICAL_COLOR: RGBColor = RGBColor(200, 80, 0);
const LEVEL_COLOR: RGBColor = RGBColor(44, 160, 44);
const EVENT_COLOR: RGBColor = RGBColor(120, 120, 120);

/// Registers the font; `false` when it cannot be read or parsed.
pub(crate) fn load_font() -> bool {
    let Ok(bytes) = fs::read(FONT_PATH) else {
        return false;
    };
    // The font table wants bytes for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
}

/// Draws one panel per run, stacked, into the PNG at `path`.
///
/// # Errors
///
/// When the file cannot be written or a drawing step fails.
pub(crate) fn draw(path: &Path, runs: &[&RunOutcome], with_text: bool) -> Result<()> {
    let height = PANEL_HEIGHT_PX * runs.len().max(1) as u32;
    let root = BitMapBackend::new(path, (WIDTH_PX, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((runs.len().max(1), 1));
    for (panel, run) in panels.iter().zip(runs) {
        draw_panel(panel, run, with_text).map_err(|e| anyhow!("drawing {}: {e}", run.name))?;
    }
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_panel(
    area: &Area<'_>,
    run: &RunOutcome,
    with_text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let series = &run.series;
    let limit = run.limit_bytes as f64 / MIB;
    let (warning, critical) = series
        .thresholds
        .map_or((0.0, 0.0), |(_, w, c)| (w as f64 / MIB, c as f64 / MIB));
    let end_secs = series
        .rss
        .last()
        .map_or(1.0, |s| s.0)
        .max(series.levels.last().map_or(1.0, |s| s.t_secs));
    let top = (series.max_rss_bytes() as f64 / MIB).max(limit) * 1.6;

    // Axes: MiB on the left, the level on the right.
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if with_text {
        builder
            .caption(&run.title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(80);
    } else {
        builder
            .x_label_area_size(10)
            .y_label_area_size(10)
            .right_y_label_area_size(10);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..end_secs, 0f64..top)?
        .set_secondary_coord(0f64..end_secs, -0.1f64..2.6f64);
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0));
    if with_text {
        mesh.x_desc("seconds since start")
            .y_desc("MiB")
            .label_style(("sans-serif", 15));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    if with_text {
        chart
            .configure_secondary_axes()
            .y_desc("level")
            .y_labels(3)
            .y_label_formatter(&|v| match v.round() as i64 {
                0 => "normal".into(),
                1 => "warning".into(),
                2 => "critical".into(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .draw()?;
    }

    // Events: the deliberate kill and the end of the load.
    for (at, label) in [
        (run.kill_at_secs, "SIGKILL + restart"),
        (run.load_stop_at_secs, "load stopped"),
    ] {
        let line = chart.draw_series(std::iter::once(PathElement::new(
            vec![(at, 0.0), (at, top)],
            EVENT_COLOR.stroke_width(1),
        )))?;
        if with_text {
            line.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], EVENT_COLOR));
        }
    }

    // Flat lines: limit and thresholds.
    for (value, color, label) in [
        (limit, LIMIT_COLOR, "limit B"),
        (critical, CRITICAL_COLOR, "critical threshold"),
        (warning, WARNING_COLOR, "warning threshold"),
    ] {
        let line = chart.draw_series(LineSeries::new(
            [(0.0, value), (end_secs, value)],
            color.stroke_width(2),
        ))?;
        if with_text {
            line.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }

    // Measured lines: usage, RSS, level.
    let usage = series
        .levels
        .iter()
        .map(|s| (s.t_secs, s.usage_bytes as f64 / MIB));
    let line = chart.draw_series(LineSeries::new(usage, USAGE_COLOR.stroke_width(2)))?;
    if with_text {
        line.label("usage (INFO mempressure_usage_bytes)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], USAGE_COLOR));
    }
    let rss = series.rss.iter().map(|s| (s.0, s.1 as f64 / MIB));
    let line = chart.draw_series(LineSeries::new(rss, RSS_COLOR.stroke_width(2)))?;
    if with_text {
        line.label("RSS (/proc VmRSS)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RSS_COLOR));
    }
    let mut steps = Vec::with_capacity(series.levels.len() * 2);
    for pair in series.levels.windows(2) {
        let level = f64::from(pair[0].level);
        steps.push((pair[0].t_secs, level));
        steps.push((pair[1].t_secs, level));
    }
    let line = chart.draw_secondary_series(LineSeries::new(steps, LEVEL_COLOR.stroke_width(2)))?;
    if with_text {
        line.label("level (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LEVEL_COLOR));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}
