//! The exercise's report: the data (every time projected back to real time), rendered as one
//! self-contained HTML file from an embedded Tera template (inline CSS and SVG, no script),
//! and as a Markdown summary for the incident ticket. It leads with the answer: how long
//! containment takes and what would go wrong.

use serde::Serialize;

use super::forecast::Forecast;

/// The embedded HTML template. Under `templates/_report/`: a `_` directory is not a message
/// template to the message catalogue.
const HTML_TEMPLATE: &str = include_str!("../../templates/_report/tabletop.html.tera");

/// A labelled figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What is counted.
    pub label: String,
    /// The count.
    pub value: u64,
}

/// One approval (or missing approval) the gate saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// The operator.
    pub operator: String,
    /// Whether a simulated operator of the exercise gave it.
    pub simulated: bool,
    /// `approved`, or `never answered`.
    pub decision: String,
}

/// One user of the manual queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manual {
    /// The user.
    pub upn: String,
    /// Why people, not the runner, handle them.
    pub bucket: String,
}

/// One rendered message, with one sample user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// The template.
    pub template: String,
    /// The form (email, sms, card).
    pub form: String,
    /// Subject (email) or summary (card); empty for SMS.
    pub subject: String,
    /// The text as the recipient reads it.
    pub body: String,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The playbook's name.
    pub playbook: String,
    /// Its SHA-256.
    pub playbook_sha256: String,
    /// What the tenant was (emulated and how big, or real and read only).
    pub tenant: String,
    /// The run in the run store.
    pub run_id: String,
    /// When the report was made, as people read it (`26 Nov 2026, 10:07 UTC`).
    pub generated_at: String,
    /// How much faster than real time the exercise ran.
    pub time_scale: f64,
    /// Projected minutes until the last automated user was done (None: not executed).
    pub contain_minutes: Option<f64>,
    /// The one-sentence answer.
    pub headline: String,
    /// What would go wrong, plainly, most serious first.
    pub problems: Vec<String>,
    /// Injects staged, each with how the playbook coped.
    pub injects: Vec<String>,
    /// Users per bucket.
    pub buckets: Vec<Row>,
    /// Steps by outcome.
    pub outcomes: Vec<Row>,
    /// Messages delivered per channel.
    pub messages: Vec<Row>,
    /// Messages by outcome (delivered, failed, to check, not sent).
    pub message_outcomes: Vec<Row>,
    /// The manual queue (first entries) and its size.
    pub manual_queue: Vec<Manual>,
    /// Users in the manual queue in all.
    pub manual_total: u64,
    /// Approvals.
    pub approvals: Vec<Approval>,
    /// The gate's decision, line by line.
    pub gate: Vec<String>,
    /// Run-level messages (help desk, manual queue, SOC) and what became of them.
    pub escalations: Vec<String>,
    /// How long each channel needs for its messages (projected).
    pub delivery_estimates: Vec<String>,
    /// Every template the playbook uses, rendered.
    pub previews: Vec<Preview>,
    /// The service desk's forecast.
    pub forecast: Forecast,
    /// Responses answered 429 by the tenant during the exercise.
    pub throttled: u64,
    /// Writes the tenant received (emulated), or that were simulated (real tenant).
    pub writes: u64,
    /// Whether `writes` were simulated (a real tenant: nothing was sent).
    pub writes_simulated: bool,
    /// The users chart (a figure: inline SVG and its table): users reset over projected
    /// time with the quota ceiling.
    pub users_chart: String,
    /// The messages chart (figure): messages delivered per channel over projected time.
    pub messages_chart: String,
    /// The forecast chart (figure): the desk's influx and backlog per hour.
    pub forecast_chart: String,
}

/// Why the report could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("the tabletop report template: {0}")]
pub struct RenderError(String);

/// Render the report as one self-contained HTML document.
pub fn html(report: &Report) -> Result<String, RenderError> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on([".html"]);
    tera.add_raw_template("tabletop.html", HTML_TEMPLATE)
        .map_err(|e| RenderError(e.to_string()))?;
    let context = tera::Context::from_serialize(report).map_err(|e| RenderError(e.to_string()))?;
    tera.render("tabletop.html", &context)
        .map_err(|e| RenderError(format!("{e:?}")))
}

/// Projected minutes as people say them: `45 min`, `3 h 20 min`.
pub fn duration(minutes: f64) -> String {
    if minutes < 1.0 {
        return format!("{} s", (minutes.max(0.0) * 60.0).round() as u64);
    }
    let total = minutes.round() as u64;
    match (total / 60, total % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The Markdown summary for the incident ticket.
pub fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Tabletop: {}\n\n**{}**\n\nTenant: {}. Run `{}`. Times are **projected** to real time \
         (the exercise ran {}x faster).\n\n",
        r.playbook, r.headline, r.tenant, r.run_id, r.time_scale
    );
    if !r.problems.is_empty() {
        md.push_str("## What would go wrong\n\n");
        for p in &r.problems {
            md.push_str(&format!("- {p}\n"));
        }
        md.push('\n');
    }
    if !r.injects.is_empty() {
        md.push_str("## Injects\n\n");
        for i in &r.injects {
            md.push_str(&format!("- {i}\n"));
        }
        md.push('\n');
    }
    let table = |md: &mut String, title: &str, rows: &[Row]| {
        md.push_str(&format!("## {title}\n\n| | |\n|---|---:|\n"));
        for row in rows {
            md.push_str(&format!("| {} | {} |\n", row.label, row.value));
        }
        md.push('\n');
    };
    table(&mut md, "Users per bucket", &r.buckets);
    table(&mut md, "Steps", &r.outcomes);
    table(&mut md, "Messages delivered per channel", &r.messages);
    md.push_str("## Approvals\n\n");
    if r.approvals.is_empty() {
        md.push_str("- none required by the playbook\n");
    }
    for a in &r.approvals {
        let who = if a.simulated { " (simulated)" } else { "" };
        md.push_str(&format!("- {}{who}: {}\n", a.operator, a.decision));
    }
    let f = &r.forecast;
    md.push_str(&format!(
        "\n## Service desk (projected)\n\n{:.0} tickets; {:.0} closed per hour on shift; peak \
         backlog {:.0}; {}.\nAssumptions: {:.0}% of SSPR-capable users call anyway, {} min per \
         ticket, {} agents, {} h shift; SSPR capability {}.\n",
        f.tickets,
        f.capacity_per_hour,
        f.peak_backlog,
        match f.cleared_after_hours {
            Some(h) => format!("cleared after {h} h"),
            None => "not cleared within 72 h".to_owned(),
        },
        f.assumptions.capable_call_share * 100.0,
        f.assumptions.minutes_per_ticket,
        f.assumptions.agents,
        f.assumptions.shift_hours,
        match f.recovery {
            super::forecast::Recovery::Known { capable, total } =>
                format!("known ({capable} of {total} capable)"),
            super::forecast::Recovery::Unknown =>
                "unknown (every user counted as a caller)".to_owned(),
        }
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabletop::forecast::{Assumptions, Recovery, forecast};

    fn sample() -> Report {
        Report {
            playbook: "credential-dump".into(),
            playbook_sha256: "ab".into(),
            tenant: "emulated <demo>".into(),
            run_id: "r1".into(),
            generated_at: "2026-01-01T00:00:00Z".into(),
            time_scale: 100.0,
            contain_minutes: Some(95.0),
            headline: "Contained in 1 h 35 min (projected)".into(),
            problems: vec!["3 users have no mobile".into()],
            injects: vec![],
            buckets: vec![Row {
                label: "automated".into(),
                value: 10,
            }],
            outcomes: vec![],
            messages: vec![],
            message_outcomes: vec![],
            manual_queue: vec![],
            manual_total: 0,
            approvals: vec![Approval {
                operator: "tabletop-operator-1".into(),
                simulated: true,
                decision: "approved".into(),
            }],
            gate: vec![],
            escalations: vec![],
            delivery_estimates: vec![],
            previews: vec![],
            forecast: forecast(&[10], Recovery::Unknown, Assumptions::default()),
            throttled: 0,
            writes: 20,
            writes_simulated: false,
            users_chart: "<svg id=\"u\"></svg>".into(),
            messages_chart: String::new(),
            forecast_chart: String::new(),
        }
    }

    #[test]
    fn the_html_leads_with_the_answer_escapes_text_and_inlines_the_charts() {
        let html = html(&sample()).unwrap();
        let answer = html.find("Contained in 1 h 35 min").unwrap();
        assert!(answer < html.find("id=\"buckets\"").unwrap());
        assert!(html.contains("emulated &lt;demo&gt;"));
        assert!(html.contains("<svg id=\"u\"></svg>"));
        assert!(!html.contains("<script"));
        assert!(html.contains("tabletop-operator-1") && html.contains("simulated"));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(44.6), "45 min");
        assert_eq!(duration(0.5), "30 s");
        assert_eq!(duration(120.0), "2 h");
        assert_eq!(duration(200.0), "3 h 20 min");
        let md = markdown(&sample());
        assert!(md.contains("**Contained in 1 h 35 min (projected)**"));
        assert!(md.contains("tabletop-operator-1 (simulated): approved"));
    }
}
