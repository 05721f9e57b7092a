//! What the long commands (`plan`, `run`, `tabletop`) show on the console while they work,
//! and how much they say when done.
//!
//! On a terminal (standard error), the long phases draw indicatif bars: planning (a spinner
//! with the time and the 429s so far: how many reads a plan needs is not known up front),
//! execution (users done of the total, with rate and ETA) and messages (sent, with rate).
//! Off a terminal nothing is drawn: `run` keeps its `--progress-every` log lines. `-q` draws
//! nothing and the commands print only errors and their final one-line answer; `--output
//! json` prints only the JSON document on standard output.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resetctl::comms::notifier::CommsStats;
use resetctl::directory::Directory;
use resetctl::engine::execute::Progress;

use crate::cli::{GlobalArgs, OutputFormat};

/// How often the bars read the live counters.
const TICK: Duration = Duration::from_millis(200);

/// How much a command says: bars or not, the full summary or one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Console {
    /// Draw progress bars (standard error is a terminal, not `-q`).
    bars: bool,
    /// `-q`: errors and the final one-line answer only.
    quiet: bool,
    /// `--output json`: the JSON document only.
    json: bool,
}

impl Console {
    /// The console of this invocation.
    pub fn new(global: &GlobalArgs) -> Console {
        use std::io::IsTerminal;
        Console::with_terminal(global, std::io::stderr().is_terminal())
    }

    /// The console, given whether standard error is a terminal.
    pub fn with_terminal(global: &GlobalArgs, terminal: bool) -> Console {
        let quiet = global.quiet > 0;
        Console {
            bars: terminal && !quiet,
            quiet,
            json: global.output == OutputFormat::Json,
        }
    }

    /// `-q`: only errors and the final one-line answer.
    pub fn quiet(self) -> bool {
        self.quiet
    }

    /// `--output json`: the JSON document only.
    pub fn json(self) -> bool {
        self.json
    }

    /// Whether the full text summary is printed (not `-q`, not `--output json`).
    pub fn summary(self) -> bool {
        !self.quiet && !self.json
    }

    /// Planning: a spinner with the elapsed time and the 429s the tenant answered, until
    /// the returned phase is finished. Nothing when bars are off.
    pub fn planning(self, what: &str, directory: Arc<dyn Directory>) -> Phase {
        if !self.bars {
            return Phase::none();
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {elapsed}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_owned());
        let before = directory.stats().throttled;
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                let throttled = directory.stats().throttled.saturating_sub(before);
                shown.set_message(format!("429s {throttled}"));
                shown.tick();
                tokio::time::sleep(TICK).await;
            }
        });
        Phase {
            bars: vec![bar],
            task: Some(task),
        }
    }

    /// Execution: users done of the total (rate, ETA, failures, 429s) and, when the run
    /// sends messages, messages sent (rate, failures). Nothing when bars are off.
    pub fn execution(
        self,
        progress: Arc<Progress>,
        directory: Arc<dyn Directory>,
        messages: Option<Arc<CommsStats>>,
    ) -> Phase {
        if !self.bars {
            return Phase::none();
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let users = bars.add(ProgressBar::new(0));
        users.set_style(
            ProgressStyle::with_template(
                "users    [{bar:30}] {pos}/{len}  {per_sec}  eta {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let sent = messages.map(|stats| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("messages {spinner} {pos} sent  {per_sec}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            (bar, stats)
        });
        let before = directory.stats().throttled;
        let (shown, shown_sent) = (users.clone(), sent.clone());
        let task = tokio::spawn(async move {
            loop {
                shown.set_length(progress.users_total.load(Ordering::Relaxed));
                shown.set_position(progress.users_done.load(Ordering::Relaxed));
                let throttled = directory.stats().throttled.saturating_sub(before);
                let failed = progress.failed.load(Ordering::Relaxed);
                shown.set_message(format!("failed {failed}  429s {throttled}"));
                if let Some((bar, stats)) = &shown_sent {
                    bar.set_position(stats.sent.load(Ordering::Relaxed));
                    bar.set_message(format!("failed {}", stats.failed.load(Ordering::Relaxed)));
                }
                tokio::time::sleep(TICK).await;
            }
        });
        let mut drawn = vec![users];
        drawn.extend(sent.map(|(bar, _)| bar));
        Phase {
            bars: drawn,
            task: Some(task),
        }
    }
}

/// A phase being drawn; finishing it (or dropping it) stops the updates and clears the bars,
/// so the summary that follows starts on a clean line.
#[derive(Debug)]
pub struct Phase {
    bars: Vec<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Phase {
    /// A phase that draws nothing.
    pub fn none() -> Phase {
        Phase {
            bars: Vec::new(),
            task: None,
        }
    }

    /// Whether anything is drawn.
    pub fn drawn(&self) -> bool {
        !self.bars.is_empty()
    }

    /// Stop drawing and clear the bars.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        for bar in self.bars.drain(..) {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["resetctl"];
        argv.extend_from_slice(args);
        argv.push("doctor");
        crate::cli::Cli::try_parse_from(argv).unwrap().global
    }

    #[test]
    fn bars_only_on_a_terminal_and_never_under_quiet() {
        assert!(Console::with_terminal(&global(&[]), true).bars);
        assert!(!Console::with_terminal(&global(&[]), false).bars);
        let quiet = Console::with_terminal(&global(&["-q"]), true);
        assert!(!quiet.bars && quiet.quiet() && !quiet.summary());
        let json = Console::with_terminal(&global(&["--output", "json"]), false);
        assert!(!json.summary() && !json.quiet());
        assert!(Console::with_terminal(&global(&[]), false).summary());
        assert!(!Phase::none().drawn());
    }
}
