//! Times of an exercise projected back to real time, as cumulative series, and the inline SVG
//! line charts the report draws from them (no script, no external file: the report must
//! open offline).

use serde::Serialize;

/// One line of a chart: a name and its (x, y) points, x in projected minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a ceiling or a limit rather than a measurement).
    pub dashed: bool,
}

/// Projected minutes of `wall_seconds` of exercise at `time_scale`.
pub fn projected_minutes(wall_seconds: f64, time_scale: f64) -> f64 {
    wall_seconds * time_scale / 60.0
}

/// The cumulative count of `events` (wall seconds since the start) as a step series in
/// projected minutes, starting at (0, 0).
pub fn cumulative(name: &str, events: &[f64], time_scale: f64) -> Series {
    let mut sorted: Vec<f64> = events.iter().copied().filter(|e| e.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut points = vec![(0.0, 0.0)];
    for (i, at) in sorted.iter().enumerate() {
        let x = projected_minutes(at.max(0.0), time_scale);
        points.push((x, (i + 1) as f64));
    }
    Series {
        name: name.to_owned(),
        points,
        dashed: false,
    }
}

/// How many of `events` (wall seconds) fall in each projected hour.
pub fn per_hour(events: &[f64], time_scale: f64) -> Vec<u64> {
    let mut hours: Vec<u64> = Vec::new();
    for at in events.iter().filter(|e| e.is_finite()) {
        let hour = (projected_minutes(at.max(0.0), time_scale) / 60.0).floor() as usize;
        if hours.len() <= hour {
            hours.resize(hour + 1, 0);
        }
        hours[hour] += 1;
    }
    hours
}

/// The most users the quota lets through: Graph's write bucket lets `burst` users through
/// at once, then the refill `per_minute` more each minute, from 0 to `until` minutes, capped
/// at `total`.
pub fn ceiling(burst: f64, per_minute: f64, total: f64, until: f64) -> Series {
    let start = burst.clamp(0.0, total);
    let end = if per_minute > 0.0 {
        ((total - start) / per_minute).min(until.max(0.0))
    } else {
        until
    };
    Series {
        name: "quota ceiling".into(),
        points: vec![
            (0.0, 0.0),
            (0.0, start),
            (end, (start + end * per_minute).min(total)),
        ],
        dashed: true,
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 6] = [
    "#1f5fae", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
];

/// A line chart of `series` as one inline `<svg>` element with axes, ticks and a legend;
/// `x_label` and `y_label` name the axes. Text is XML-escaped.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = nice(all.clone().map(|p| p.0).fold(0.0, f64::max));
    let y_max = nice(all.map(|p| p.1).fold(0.0, f64::max));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{t}\" class=\"chart\"><title>{t}</title>",
        t = escape(title)
    );
    // Grid and ticks: five divisions on each axis.
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let (x, y) = (sx(x_max * f), sy(y_max * f));
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            label(y_max * f),
            TOP + ph + 16.0,
            label(x_max * f),
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b:.1}\" stroke=\"#374151\"/>\
         <line x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" stroke=\"#374151\"/>\
         <text x=\"{cx:.1}\" y=\"{ly:.1}\" font-size=\"12\" text-anchor=\"middle\">{xl}</text>\
         <text x=\"14\" y=\"{cy:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 14 {cy:.1})\">{yl}</text>",
        b = TOP + ph,
        r = LEFT + pw,
        cx = LEFT + pw / 2.0,
        ly = HEIGHT - 6.0,
        cy = TOP + ph / 2.0,
        xl = escape(x_label),
        yl = escape(y_label),
    ));
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let dash = if s.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\">\
             <title>{}</title></polyline>",
            points.join(" "),
            escape(&s.name)
        ));
        let ly = TOP + 14.0 * i as f64 + 6.0;
        svg.push_str(&format!(
            "<line x1=\"{x1:.1}\" y1=\"{ly:.1}\" x2=\"{x2:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dash}/><text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"11\">{}</text>",
            escape(&s.name),
            x1 = LEFT + 12.0,
            x2 = LEFT + 32.0,
            tx = LEFT + 38.0,
            ty = ly + 4.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A round axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
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

    #[test]
    fn wall_seconds_are_projected_back_by_the_time_scale() {
        assert_eq!(projected_minutes(6.0, 100.0), 10.0);
        let s = cumulative("reset", &[3.0, 1.2, 6.0], 100.0);
        assert_eq!(
            s.points,
            vec![(0.0, 0.0), (2.0, 1.0), (5.0, 2.0), (10.0, 3.0)]
        );
        // 36 wall seconds at 100x are one projected hour.
        assert_eq!(per_hour(&[1.0, 35.0, 37.0, 80.0], 100.0), vec![2, 1, 1]);
    }

    #[test]
    fn the_ceiling_stops_at_the_total() {
        let c = ceiling(0.0, 10.0, 50.0, 100.0);
        assert_eq!(c.points, vec![(0.0, 0.0), (0.0, 0.0), (5.0, 50.0)]);
        // The bucket lets 20 through at once; the refill the other 30 in 3 minutes.
        let c = ceiling(20.0, 10.0, 50.0, 100.0);
        assert_eq!(c.points, vec![(0.0, 0.0), (0.0, 20.0), (3.0, 50.0)]);
        assert!(c.dashed);
    }

    #[test]
    fn a_chart_is_one_svg_with_a_line_per_series_and_escaped_text() {
        let svg = line_chart(
            "a <b>",
            "minutes",
            "users",
            &[cumulative("x&y", &[1.0], 1.0), ceiling(0.0, 1.0, 1.0, 1.0)],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x&amp;y"));
        assert!(svg.contains("stroke-dasharray"));
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(340.0), 500.0);
    }
}
