//! The report's line charts, drawn by plotters' SVG backend into a string: one inline `<svg>`
//! per chart (no script, no external file: the report opens offline), with a `<title>` and a
//! `<desc>` for a screen reader and the same figures as a table under it.
//!
//! plotters is built without its `ttf` feature: text is laid out with its built-in size
//! estimate and written as SVG `<text>` elements, so no system font is looked up when the
//! report is made; the browser that opens it draws the text with its own `sans-serif`.

use plotters::prelude::*;

use super::timeline::Series;

/// Size of a chart in SVG user units (it scales to the page's width).
const SIZE: (u32, u32) = (760, 320);
/// Points drawn per line at most; a longer series is thinned evenly (its ends kept).
const MAX_POINTS: usize = 400;
/// Rows of the text alternative's table at most.
const TABLE_ROWS: usize = 12;
/// Line colours, distinguishable in print and for the common colour-vision deficiencies
/// (Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// How the x axis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// x is projected minutes since the start, labelled `30 s`, `45 min`, `1 h 30`.
    Minutes,
    /// x is projected hours since the start, labelled `3 h`.
    Hours,
}

impl XAxis {
    /// One x value as people read it.
    pub fn label(self, x: f64) -> String {
        let minutes = match self {
            XAxis::Minutes => x,
            XAxis::Hours => x * 60.0,
        };
        let seconds = (minutes.max(0.0) * 60.0).round() as u64;
        // Under ten minutes a chart's ticks can fall between whole minutes.
        if seconds < 600 && !seconds.is_multiple_of(60) {
            return match (seconds / 60, seconds % 60) {
                (0, s) => format!("{s} s"),
                (m, s) => format!("{m} min {s} s"),
            };
        }
        let total = minutes.max(0.0).round() as u64;
        match (total / 60, total % 60) {
            (0, 0) => "0".to_owned(),
            (0, m) => format!("{m} min"),
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m:02}"),
        }
    }
}

/// One chart: what it shows and its lines.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// A short id, unique in the report (it names the `<title>`/`<desc>` elements).
    pub id: &'a str,
    /// Title: what the chart shows.
    pub title: &'a str,
    /// The x axis's name.
    pub x_label: &'a str,
    /// How x values read.
    pub x_axis: XAxis,
    /// The y axis's name.
    pub y_label: &'a str,
    /// The lines (a dashed one is a limit, not a measurement).
    pub series: &'a [Series],
}

/// Why a chart could not be drawn (plotters' drawing error, as text).
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart {chart}: {message}")]
pub struct ChartError {
    chart: String,
    message: String,
}

impl Chart<'_> {
    /// The chart as HTML: a `<figure>` holding the SVG (with `<title>` and `<desc>`) and,
    /// folded under it, the figures as a table.
    pub fn html(&self) -> Result<String, ChartError> {
        let svg = self.svg()?;
        Ok(format!(
            "<figure class=\"chart\" id=\"chart-{id}\">{svg}<details><summary>{title}: the \
             figures as a table</summary>{table}</details></figure>",
            id = escape(self.id),
            title = escape(self.title),
            table = self.table(),
        ))
    }

    /// The SVG element alone.
    pub fn svg(&self) -> Result<String, ChartError> {
        let fail = |e: &dyn std::fmt::Display| ChartError {
            chart: self.title.to_owned(),
            message: e.to_string(),
        };
        let (x_max, y_max) = self.extent();
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .margin_top(12)
                .margin_right(24)
                .margin_left(8)
                .margin_bottom(4)
                .x_label_area_size(48)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
                .map_err(|e| fail(&e))?;
            let axis = self.x_axis;
            let y_step = y_max / 5.0;
            chart
                .configure_mesh()
                .x_labels(7)
                .y_labels(6)
                .x_label_formatter(&|x| axis.label(*x))
                .y_label_formatter(&|y| count_label(*y, y_step))
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .light_line_style(RGBColor(243, 244, 246))
                .bold_line_style(RGBColor(229, 231, 235))
                .draw()
                .map_err(|e| fail(&e))?;
            for (i, series) in self.series.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                let style = colour.stroke_width(2);
                let points = thin(&series.points, MAX_POINTS);
                let drawn = if series.dashed {
                    chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
                } else {
                    chart.draw_series(LineSeries::new(points, style))
                };
                let dashed = series.dashed;
                drawn
                    .map_err(|e| fail(&e))?
                    .label(series.name.as_str())
                    .legend(move |(x, y)| legend_mark(x, y, colour, dashed));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font(("sans-serif", 15))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(209, 213, 219))
                .draw()
                .map_err(|e| fail(&e))?;
            root.present().map_err(|e| fail(&e))?;
        }
        Ok(self.accessible(&buf))
    }

    /// The axes' upper ends: a round number at or above every point (1 when empty).
    fn extent(&self) -> (f64, f64) {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let x = points().map(|p| p.0).fold(0.0, f64::max);
        let y = points().map(|p| p.1).fold(0.0, f64::max);
        (nice(x), nice(y))
    }

    /// `buf`'s root `<svg>` marked as an image named by its `<title>` and described by its
    /// `<desc>`, which are inserted as its first children.
    fn accessible(&self, buf: &str) -> String {
        let id = escape(self.id);
        let head = format!(
            " role=\"img\" aria-labelledby=\"chart-{id}-title chart-{id}-desc\">\
             <title id=\"chart-{id}-title\">{}</title><desc id=\"chart-{id}-desc\">{}</desc>",
            escape(self.title),
            escape(&self.description()),
        );
        match buf
            .find("<svg")
            .and_then(|at| buf[at..].find('>').map(|end| at + end))
        {
            Some(end) => format!("{}{head}{}", &buf[..end], &buf[end + 1..]),
            None => buf.to_owned(),
        }
    }

    /// One sentence per line: where it ends and when.
    fn description(&self) -> String {
        let mut text = format!("{} against {}.", self.y_label, self.x_label);
        for s in self.series {
            let peak = s.points.iter().map(|p| p.1).fold(0.0, f64::max);
            let last = s.points.last().copied().unwrap_or((0.0, 0.0));
            text.push_str(&format!(
                " {}: {} at {}, highest {}.",
                s.name,
                count_label(last.1, 1.0),
                self.x_axis.label(last.0),
                count_label(peak, 1.0),
            ));
        }
        text
    }

    /// The figures as an HTML table: each line's value at evenly spaced times.
    fn table(&self) -> String {
        let (x_max, _) = self.extent();
        let end = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max);
        let rows = if end > 0.0 { TABLE_ROWS } else { 1 };
        let mut html = format!("<table><tr><th scope=\"col\">{}</th>", escape(self.x_label));
        for s in self.series {
            html.push_str(&format!("<th scope=\"col\">{}</th>", escape(&s.name)));
        }
        html.push_str("</tr>");
        let mut last_label = String::new();
        for i in 0..=rows {
            let x = (end * i as f64 / rows as f64).min(x_max);
            let label = self.x_axis.label(x);
            if label == last_label {
                continue;
            }
            html.push_str(&format!("<tr><td>{}</td>", escape(&label)));
            for s in self.series {
                html.push_str(&format!(
                    "<td class=\"n\">{}</td>",
                    count_label(value_at(&s.points, x), 1.0)
                ));
            }
            html.push_str("</tr>");
            last_label = label;
        }
        html.push_str("</table>");
        html
    }
}

/// The legend's sample of a line, two segments: touching (solid), or apart like the dashes
/// of the limit it stands for.
fn legend_mark<'a, DB: DrawingBackend + 'a>(
    x: i32,
    y: i32,
    colour: RGBColor,
    dashed: bool,
) -> impl IntoDynElement<'a, DB, (i32, i32)> {
    let style = colour.stroke_width(2);
    let gap = if dashed { 5 } else { 0 };
    EmptyElement::at((x, y))
        + PathElement::new(vec![(0, 0), (9, 0)], style)
        + PathElement::new(vec![(9 + gap, 0), (22, 0)], style)
}

/// The value of a line at `x`, read off the line as it is drawn: interpolated between the
/// two points around `x`, the last point's value past the end.
fn value_at(points: &[(f64, f64)], x: f64) -> f64 {
    let mut value = 0.0;
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if x >= x1 {
            value = y1;
        } else if x >= x0 && x1 > x0 {
            value = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
            break;
        } else {
            break;
        }
    }
    if points.len() == 1 && x >= points[0].0 {
        value = points[0].1;
    }
    value
}

/// At most `max` of `points`, evenly spaced, the first and the last always kept.
fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

/// A round axis maximum at or above `v` (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of
/// ten: close enough that a line fills most of its chart).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// A count as people read it: whole numbers with thousands separated (`12,500`); one
/// decimal when the axis's step is below 1.
fn count_label(v: f64, step: f64) -> String {
    if step < 1.0 && (v - v.round()).abs() > 1e-9 {
        return format!("{v:.1}");
    }
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabletop::timeline::{ceiling, cumulative};

    fn chart(series: &[Series]) -> Chart<'_> {
        Chart {
            id: "users",
            title: "Users <done>",
            x_label: "time (projected)",
            x_axis: XAxis::Minutes,
            y_label: "users",
            series,
        }
    }

    #[test]
    fn a_chart_is_one_accessible_svg_with_its_lines_legend_and_escaped_text() {
        let series = [
            cumulative("x&y", &[30.0, 60.0, 90.0], 1.0),
            ceiling(0.0, 2.0, 3.0, 2.0),
        ];
        let html = chart(&series).html().unwrap();
        // plotters writes each <text>'s content on a line of its own.
        let svg = chart(&series).svg().unwrap().replace('\n', "");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<svg").count(), 1);
        // Named and described for a screen reader.
        assert!(svg.contains("role=\"img\""), "{svg}");
        assert!(svg.contains("<title id=\"chart-users-title\">Users &lt;done&gt;</title>"));
        assert!(svg.contains("<desc id=\"chart-users-desc\">"), "{svg}");
        assert!(
            svg.contains("x&amp;y: 3 at 1 min 30 s, highest 3."),
            "{svg}"
        );
        // The legend names both lines; text is SVG <text>, escaped.
        assert!(svg.contains(">x&amp;y</text>") && svg.contains(">quota ceiling</text>"));
        assert!(!svg.contains("x&y"));
        // Axis labels read as durations.
        assert!(
            svg.contains(">0</text>") && svg.contains(" s</text>"),
            "{svg}"
        );
        assert!(svg.contains(">time (projected)</text>"));
        // Lines are drawn: the solid one as one polyline, the dashed one in segments.
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        assert!(!svg.contains("<script"));
        // The table under it: the figures at evenly spaced times.
        assert!(html.contains("<details><summary>Users &lt;done&gt;: the figures as a table"));
        assert!(html.contains("<th scope=\"col\">x&amp;y</th>"), "{html}");
        assert!(
            html.contains(
                "<tr><td>1 min 30 s</td><td class=\"n\">3</td><td class=\"n\">3</td></tr>"
            ),
            "{html}"
        );
    }

    #[test]
    fn an_empty_chart_still_draws_axes() {
        let svg = chart(&[]).svg().unwrap().replace('\n', "");
        assert!(svg.contains(">0</text>"), "{svg}");
        assert!(chart(&[]).html().unwrap().contains("<table>"));
    }

    #[test]
    fn labels_values_and_thinning() {
        assert_eq!(XAxis::Minutes.label(0.0), "0");
        assert_eq!(XAxis::Minutes.label(45.0), "45 min");
        assert_eq!(XAxis::Minutes.label(90.0), "1 h 30");
        assert_eq!(XAxis::Minutes.label(0.5), "30 s");
        assert_eq!(XAxis::Minutes.label(2.25), "2 min 15 s");
        assert_eq!(XAxis::Hours.label(3.0), "3 h");
        assert_eq!(XAxis::Hours.label(1.5), "1 h 30");
        assert_eq!(count_label(12_500.0, 2_000.0), "12,500");
        assert_eq!(count_label(2.5, 0.5), "2.5");
        assert_eq!(nice(340.0), 400.0);
        assert_eq!(nice(121.0), 150.0);
        assert_eq!(nice(200.0), 200.0);
        assert_eq!(nice(0.0), 1.0);
        let steps = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)];
        assert_eq!(value_at(&steps, 1.5), 1.5);
        assert_eq!(value_at(&steps, 5.0), 2.0);
        let many: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), 1.0)).collect();
        let thinned = thin(&many, 400);
        assert_eq!(thinned.len(), 400);
        assert_eq!(thinned[0], many[0]);
        assert_eq!(thinned[399], many[9_999]);
    }
}
