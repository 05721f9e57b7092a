//! The service desk's forecast: from how many users are reset in each projected hour, whether
//! they can recover on their own (SSPR), and stated assumptions, the tickets that arrive and
//! the backlog left at the end of each hour, so the desk can staff for the day.

use serde::Serialize;

/// What the forecast assumes; every figure is printed beside the result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assumptions {
    /// Share (0–1) of SSPR-capable users who call the desk anyway.
    pub capable_call_share: f64,
    /// Minutes an agent spends on one ticket.
    pub minutes_per_ticket: f64,
    /// Agents on shift.
    pub agents: u32,
    /// Hours the shift lasts from the first reset; after it nobody answers.
    pub shift_hours: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            capable_call_share: 0.2,
            minutes_per_ticket: 10.0,
            agents: 4,
            shift_hours: 8.0,
        }
    }
}

/// How many of the reset users can recover by SSPR, when that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Recovery {
    /// `capable` of `total` users are SSPR-capable.
    Known {
        /// SSPR-capable users.
        capable: u64,
        /// All users counted.
        total: u64,
    },
    /// The registration state was not read: every user is counted as one who calls.
    Unknown,
}

impl Recovery {
    /// The share (0–1) of users expected to call under `a`.
    pub fn call_share(self, a: &Assumptions) -> f64 {
        match self {
            Recovery::Known { total: 0, .. } => 0.0,
            Recovery::Known { capable, total } => {
                let capable = capable.min(total) as f64;
                let total = total as f64;
                (capable * a.capable_call_share + (total - capable)) / total
            }
            Recovery::Unknown => 1.0,
        }
    }
}

/// One projected hour at the desk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hour {
    /// Hours since the first reset (0 is the first hour).
    pub hour: u32,
    /// Tickets arriving in this hour.
    pub influx: f64,
    /// Tickets the agents close in this hour.
    pub handled: f64,
    /// Tickets still open at the end of it.
    pub backlog: f64,
}

/// The forecast, hour by hour until the backlog is cleared (or 72 hours).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The assumptions it was made with.
    pub assumptions: Assumptions,
    /// Whether the SSPR state was known.
    pub recovery: Recovery,
    /// Tickets expected in all.
    pub tickets: f64,
    /// Tickets the desk closes per hour on shift.
    pub capacity_per_hour: f64,
    /// The highest backlog, and the hour it is reached.
    pub peak_backlog: f64,
    /// Hour at whose end the backlog is first zero, if within the horizon.
    pub cleared_after_hours: Option<u32>,
    /// Hour by hour.
    pub hours: Vec<Hour>,
}

/// Hours the forecast looks ahead at most.
const HORIZON: u32 = 72;

/// Forecast the desk's load from `resets_per_hour` (users reset in each projected hour).
pub fn forecast(resets_per_hour: &[u64], recovery: Recovery, a: Assumptions) -> Forecast {
    let share = recovery.call_share(&a);
    let capacity = if a.minutes_per_ticket > 0.0 {
        f64::from(a.agents) * 60.0 / a.minutes_per_ticket
    } else {
        0.0
    };
    let mut hours = Vec::new();
    let (mut backlog, mut peak, mut tickets) = (0.0_f64, 0.0_f64, 0.0_f64);
    let mut cleared = None;
    for hour in 0..HORIZON {
        let influx = resets_per_hour.get(hour as usize).copied().unwrap_or(0) as f64 * share;
        tickets += influx;
        // The part of this hour that lies inside the shift.
        let on_shift = (a.shift_hours - f64::from(hour)).clamp(0.0, 1.0);
        let open = backlog + influx;
        let handled = open.min(capacity * on_shift);
        backlog = open - handled;
        peak = peak.max(backlog);
        hours.push(Hour {
            hour,
            influx,
            handled,
            backlog,
        });
        let arrivals_done = hour as usize + 1 >= resets_per_hour.len();
        if arrivals_done && backlog < 0.5 {
            cleared = Some(hour + 1);
            break;
        }
    }
    Forecast {
        assumptions: a,
        recovery,
        tickets,
        capacity_per_hour: capacity,
        peak_backlog: peak,
        cleared_after_hours: cleared,
        hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capable_users_call_at_the_stated_share_the_others_all_call() {
        let a = Assumptions::default();
        let known = Recovery::Known {
            capable: 80,
            total: 100,
        };
        assert!((known.call_share(&a) - (80.0 * 0.2 + 20.0) / 100.0).abs() < 1e-9);
        assert_eq!(Recovery::Unknown.call_share(&a), 1.0);
    }

    #[test]
    fn the_backlog_grows_past_capacity_and_is_worked_off_on_shift() {
        let a = Assumptions {
            capable_call_share: 1.0,
            minutes_per_ticket: 10.0,
            agents: 1,
            shift_hours: 8.0,
        };
        // 6 tickets an hour of capacity; 20 calls in the first hour.
        let f = forecast(&[20], Recovery::Unknown, a);
        assert_eq!(f.capacity_per_hour, 6.0);
        assert_eq!(f.hours[0].backlog, 14.0);
        assert_eq!(f.hours[1].backlog, 8.0);
        assert_eq!(f.tickets, 20.0);
        assert_eq!(f.peak_backlog, 14.0);
        assert_eq!(f.cleared_after_hours, Some(4));
    }

    #[test]
    fn after_the_shift_nobody_answers() {
        let a = Assumptions {
            capable_call_share: 1.0,
            minutes_per_ticket: 60.0,
            agents: 1,
            shift_hours: 1.5,
        };
        let f = forecast(&[5], Recovery::Unknown, a);
        assert_eq!(f.hours[0].backlog, 4.0);
        assert_eq!(f.hours[1].backlog, 3.5);
        assert_eq!(f.hours[2].backlog, 3.5);
        assert_eq!(f.cleared_after_hours, None);
        assert_eq!(f.hours.len(), HORIZON as usize);
    }
}
