//! The SVG of a run: latency by percentile, and throughput second by second.

use std::path::Path;

use plotters::prelude::*;

use crate::run::Report;
use crate::stats::Latency;

/// x position of a percentile on a "nines" axis: 90 -> 1, 99 -> 2, 99.9 -> 3.
fn nines(q: f64) -> f64 {
    -(1.0 - (q / 100.0).min(0.999_99)).log10()
}

/// Draws `report` into an SVG file.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    let p = &report.params;
    let title = format!(
        "ringlog-bench {:?}: {} B messages, {} partitions, acks={}, fsync={}",
        p.mode, p.message_size, p.partitions, p.acks, p.fsync
    );

    let curves: Vec<(&str, &Latency, RGBColor)> = [
        ("ack latency", report.ack_latency.as_ref(), BLUE),
        ("end-to-end latency", report.e2e_latency.as_ref(), RED),
    ]
    .into_iter()
    .filter_map(|(n, l, c)| l.filter(|l| l.count > 0).map(|l| (n, l, c)))
    .collect();
    let y_max = curves.iter().map(|(_, l, _)| l.max_ms).fold(0.01, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(&title, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..5.0, (0.001..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile (0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99)")
        .y_desc("latency (ms)")
        .draw()?;
    for (name, latency, color) in curves {
        let points = latency
            .distribution
            .iter()
            .map(|(q, ms)| (nines(*q), ms.max(0.001)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    let t_max = report.timeline.last().map_or(1.0, |(t, _)| *t).max(1.0);
    let m_max = report
        .timeline
        .iter()
        .map(|(_, m)| *m)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("messages per second", ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max, 0.0..m_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("msgs/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        report.timeline.iter().map(|(t, m)| (*t, *m as f64)),
        BLUE.stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}
