//! Times of an exercise projected back to real time, as the cumulative series and hourly
//! counts the report's charts ([`super::chart`]) and forecast are drawn from.

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
}
