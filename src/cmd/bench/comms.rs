//! `resetctl bench comms`: what communications cost at incident scale.
//!
//! 1. **Rendering**: `--n` messages (default 100,000) rendered from the shipped templates,
//!    each as one HTML + text mail, one SMS and one Adaptive Card (schema-checked) for a
//!    different user: messages per second and the process's peak RSS.
//! 2. **Delivery**: 10,000 notices (a tenth of `--n`) through each sender of the emulated
//!    tenant's sinks (Graph mail, ACS and Twilio SMS, the Teams workflow), each paced at its
//!    documented limit with time compressed by `--time-scale` (use 500: 10,000 mails at 30 a
//!    minute are 5.5 hours of real time, 40 s at that scale): the achieved rate as a share of
//!    the limit (goal ≥ 95 %) and the capacity estimate's error against the measured time
//!    (goal within 10 %), in real-time terms.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use resetctl::comms::context::{NoticeContext, Person};
use resetctl::comms::message::{Address, Content, Outbound};
use resetctl::comms::template::{Catalog, Form};
use resetctl::comms::{Channel as Sender, ChannelError};
use serde_json::json;

use super::Figures;
use crate::cmd::{CmdResult, Exit, Failure};

/// The per-user notice whose three forms are rendered.
const TEMPLATE: &str = "credential-dump-notice";

fn fail(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Config, format!("bench comms: {what}: {e}"))
}

/// Run both parts.
pub async fn run(figures: &mut Figures, n: Option<u64>, time_scale: f64) -> CmdResult {
    let n = n.unwrap_or(100_000).max(10);
    let render = render(figures, n)?;
    let deliver = deliver(figures, (n / 10).max(1), time_scale).await?;
    figures.set("comms", json!({ "render": render, "deliver": deliver }));
    Ok(Exit::Success)
}

/// Render `n` messages in every form, across both cores.
fn render(figures: &Figures, n: u64) -> Result<serde_json::Value, Failure> {
    let catalog = Arc::new(Catalog::embedded());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let bytes: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let catalog = Arc::clone(&catalog);
                scope.spawn(move || -> Result<u64, String> {
                    let mut bytes = 0u64;
                    let mut ctx = NoticeContext::sample();
                    for i in (t as u64..n).step_by(threads) {
                        ctx.user = Person {
                            display_name: format!("User {i} <b>&</b>"),
                            given_name: Some(format!("User{i}")),
                            upn: format!("user{i}@contoso.com"),
                        };
                        ctx.recipient = ctx.user.clone();
                        let language = if i % 5 == 0 {
                            Some("de-DE")
                        } else {
                            Some("en-US")
                        };
                        for form in [Form::Email, Form::Sms, Form::Card] {
                            let content = catalog
                                .render(TEMPLATE, form, language, &ctx)
                                .map_err(|e| e.to_string())?;
                            bytes += match content {
                                Content::Email { html, text, .. } => {
                                    (html.len() + text.len()) as u64
                                }
                                Content::Sms { text } => text.len() as u64,
                                Content::Card { summary, .. } => summary.len() as u64,
                                Content::Json(_) => 0,
                            };
                        }
                    }
                    Ok(bytes)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "a render thread panicked".to_owned())
                    .and_then(|r| r)
            })
            .sum::<Result<u64, String>>()
    })
    .map_err(|e| fail("render", e))?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = n as f64 / seconds;
    let rss = super::run::peak_rss_mb();
    figures.line(format!(
        "render: {n} messages (HTML+text mail, SMS, card each) in {seconds:.1} s on {threads} \
         threads: {rate:.0} messages/s, {:.1} MB of text, peak RSS {rss} MB",
        bytes as f64 / 1e6
    ));
    Ok(json!({
        "messages": n,
        "seconds": seconds,
        "messages_per_second": rate,
        "threads": threads,
        "peak_rss_mb": rss,
    }))
}

/// Deliver `n` notices per channel into the emulator's sinks.
async fn deliver(figures: &Figures, n: u64, time_scale: f64) -> Result<serde_json::Value, Failure> {
    let (tenant, messaging) = crate::cmd::tenant::demo_with(time_scale)
        .await
        .map_err(|f| fail("emulated tenant", f.report))?;
    let senders =
        crate::cmd::comms::senders(&messaging, &tenant).map_err(|f| fail("senders", f.report))?;
    let mut rows = Vec::new();
    for sender in senders
        .iter()
        .filter(|s| s.kind() != resetctl::playbook::Channel::Webhook)
    {
        let row = deliver_one(figures, sender, n, time_scale).await?;
        rows.push(row);
    }
    tenant.close().await;
    Ok(serde_json::Value::Array(rows))
}

/// One sender: `n` messages at its paced limit, all in flight at once as a run's notices are.
async fn deliver_one(
    figures: &Figures,
    sender: &Arc<dyn Sender>,
    n: u64,
    time_scale: f64,
) -> Result<serde_json::Value, Failure> {
    let limits = sender.limits();
    let kind = sender.kind();
    let messages: Vec<Outbound> = (0..n).map(|i| outbound(kind, i)).collect();
    let started = Instant::now();
    let results: Vec<Result<_, ChannelError>> = futures::stream::iter(messages.iter())
        .map(|m| sender.send(m))
        .buffer_unordered(512)
        .collect()
        .await;
    let measured = started.elapsed().as_secs_f64() * time_scale;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let estimate = n as f64 / limits.per_minute * 60.0;
    let achieved_per_minute = n as f64 / measured * 60.0;
    let share = achieved_per_minute / limits.per_minute;
    let error = (estimate - measured) / measured;
    figures.line(format!(
        "deliver: {n} via {}: {measured:.0} s real time (estimate {estimate:.0} s, error \
         {:+.1} %), {achieved_per_minute:.0}/min = {:.1} % of its {:.0}/min limit, {failed} failed",
        sender.name(),
        error * 100.0,
        share * 100.0,
        limits.per_minute,
    ));
    Ok(json!({
        "sender": sender.name(),
        "messages": n,
        "failed": failed,
        "limit_per_minute": limits.per_minute,
        "achieved_per_minute": achieved_per_minute,
        "share_of_limit": share,
        "measured_seconds": measured,
        "estimated_seconds": estimate,
        "estimate_error": error,
    }))
}

/// A notice for channel `kind` to a fictitious recipient `i` (numbers in the 555 range).
fn outbound(kind: resetctl::playbook::Channel, i: u64) -> Outbound {
    use resetctl::playbook::Channel;
    let (to, content) = match kind {
        Channel::Email => (
            Address::Email(format!("user{i}@northwind-demo.com")),
            Content::Email {
                subject: "Your password was reset".into(),
                html: format!("<p>Notice {i}</p>"),
                text: format!("Notice {i}"),
            },
        ),
        Channel::Sms => (
            Address::Phone(format!("+1425555{:04}", i % 10_000)),
            Content::Sms {
                text: format!("Contoso IT: notice {i}"),
            },
        ),
        Channel::Teams => (
            Address::Teams { mention: None },
            Content::Card {
                card: json!({"type": "AdaptiveCard", "version": "1.5",
                    "body": [{"type": "TextBlock", "text": format!("Notice {i}")}]}),
                summary: format!("Notice {i}"),
            },
        ),
        Channel::Webhook => (Address::Webhook, Content::Json(json!({ "n": i }))),
    };
    Outbound {
        key: uuid::Uuid::new_v4(),
        first_sent: jiff::Timestamp::now(),
        to,
        content,
        carries_secret: false,
    }
}
