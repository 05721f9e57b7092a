//! The tabletop report as a reader gets it: it parses as HTML5, its charts are accessible
//! inline SVG, and the installed headless Chromium renders it to a PNG without console
//! errors. And the console of the long commands: `-q` prints one line, `--output json` one
//! document, neither with progress-bar characters.

use std::path::Path;
use std::process::{Command, Output};

use scraper::{Html, Selector};
use serde_json::Value;

use crate::browser::{chromium, png_size};
use crate::util::{bin, code, stderr, stdout};

/// Run `resetctl` from the crate root with its own data directory, off the async runtime.
async fn resetctl(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(bin());
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RESETCTL_DATA_DIR", dir.join("data"))
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// A tabletop of the README's playbook on a small demo tenant; the report's path.
async fn report(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("report.html");
    let out = resetctl(
        dir,
        &[
            "tabletop",
            "playbooks/credential-dump.yaml",
            "--users",
            "400",
            "--report",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    path
}

/// Characters a progress bar or a redrawn status line would leave in captured output.
fn assert_no_bars(text: &str) {
    for mark in ['\r', '\u{1b}', '█', '░', '⠁', '⠋'] {
        assert!(!text.contains(mark), "{mark:?} in {text:?}");
    }
    assert!(!text.contains("=>"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_parses_as_html_with_three_accessible_charts() {
    let dir = tempfile::tempdir().unwrap();
    let html = std::fs::read_to_string(report(dir.path()).await).unwrap();
    let doc = Html::parse_document(&html);
    assert!(
        doc.errors.is_empty(),
        "HTML5 parse errors: {:?}",
        doc.errors
    );
    let sel = |s: &str| Selector::parse(s).unwrap();
    let charts: Vec<_> = doc.select(&sel("figure.chart")).collect();
    let ids: Vec<_> = charts.iter().filter_map(|c| c.value().id()).collect();
    assert_eq!(ids, ["chart-users", "chart-messages", "chart-forecast"]);
    for chart in &charts {
        let svg = chart.select(&sel("svg")).next().expect("an svg per chart");
        assert_eq!(svg.value().attr("role"), Some("img"));
        // Every id the SVG is labelled by is its own <title> or <desc>, with text in it.
        let labelled_by = svg.value().attr("aria-labelledby").unwrap();
        for id in labelled_by.split(' ') {
            let named = svg
                .select(&sel(&format!("#{id}")))
                .next()
                .unwrap_or_else(|| panic!("no element {id}"));
            assert!(!named.text().collect::<String>().trim().is_empty(), "{id}");
        }
        // Axis labels and the legend are text, not paths; the figures are a table too.
        let texts: Vec<String> = svg
            .select(&sel("text"))
            .map(|t| t.text().collect())
            .collect();
        assert!(texts.iter().any(|t| t.contains("(projected)")), "{texts:?}");
        assert!(texts.len() > 10, "{texts:?}");
        let rows = chart.select(&sel("details table tr")).count();
        assert!(rows >= 2, "a table of the figures under the chart");
    }
    // When it was made reads as a minute with its zone, not RFC 3339 with nanoseconds.
    let meta: String = doc.select(&sel("p.meta")).next().unwrap().text().collect();
    let rfc3339 =
        |w: &str| w.len() >= 20 && w.as_bytes()[10] == b'T' && w[..4].parse::<u16>().is_ok();
    assert!(!meta.split_whitespace().any(rfc3339), "{meta}");
    assert!(meta.contains(" UTC"), "{meta}");
    let legend: Vec<String> = charts[0]
        .select(&sel("svg text"))
        .map(|t| t.text().collect::<String>().trim().to_owned())
        .collect();
    assert!(
        legend.iter().any(|t| t == "quota ceiling") && legend.iter().any(|t| t == "users written"),
        "{legend:?}"
    );
    // The line is drawn from the run: it ends at the users written, every automated user
    // and at most the manual queue's hybrid users besides (their cloud-only steps).
    let desc: String = charts[0]
        .select(&sel("desc"))
        .next()
        .unwrap()
        .text()
        .collect();
    let number = |text: &str, before: &str, after: &str| -> u64 {
        text.split(before)
            .nth(1)
            .and_then(|rest| rest.split(after).next())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let written = number(&desc, "users written:", " at");
    let automated = number(&html, "<td>automated</td><td class=\"n\">", "<");
    let manual = number(&html, "<h2>Manual queue (", ")");
    assert!(
        automated > 0 && written >= automated && written <= automated + manual,
        "{desc} / automated {automated}, manual {manual}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_renders_the_report_without_console_errors() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = report(dir.path()).await;
    let url = format!("file://{}", report.display());
    let shot = dir.path().join("report.png");
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: Vec<String>| {
        let mut command = Command::new(&chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let rendered = run(vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1100,2400".into(),
    ])
    .await
    .unwrap();
    let log = stderr(&rendered);
    assert!(rendered.status.success(), "{log}");
    // Page errors reach the log as "CONSOLE(...)" lines, uncaught ones as "Uncaught".
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&png), Some((1100, 2400)));
    // A blank page compresses to a few kilobytes; text, tables and three charts do not.
    assert!(png.len() > 60_000, "{} bytes", png.len());

    // The DOM Chromium built holds the charts' SVG and the answer.
    let dumped = run(vec!["--dump-dom".into()]).await.unwrap();
    let dom = stdout(&dumped);
    assert_eq!(dom.matches("<svg").count(), 3, "{dom}");
    assert!(dom.contains("(projected):"), "the headline");
    assert!(dom.contains("<desc id=\"chart-users-desc\">"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_prints_one_line_and_json_one_document_without_bars() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("q.html");
    let quiet = resetctl(
        dir.path(),
        &[
            "-q",
            "tabletop",
            "playbooks/credential-dump.yaml",
            "--users",
            "200",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code(&quiet), 0, "{}", stderr(&quiet));
    let text = stdout(&quiet);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("(projected)") && text.contains("q.html"),
        "{text}"
    );
    assert_eq!(stderr(&quiet), "");
    assert_no_bars(&text);

    let json = resetctl(
        dir.path(),
        &[
            "--output",
            "json",
            "tabletop",
            "playbooks/credential-dump.yaml",
            "--users",
            "200",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code(&json), 0, "{}", stderr(&json));
    let doc: Value = serde_json::from_str(&stdout(&json)).expect("one JSON document");
    assert!(doc["headline"].as_str().unwrap().contains("projected"));
    assert_no_bars(&stdout(&json));
    assert_no_bars(&stderr(&json));

    // plan and run (a dry run) on the demo tenant: one line under -q.
    for (command, starts) in [("plan", "plan "), ("run", "dry run ")] {
        let out = resetctl(
            dir.path(),
            &["-q", command, "playbooks/credential-dump.yaml"],
        )
        .await;
        assert_eq!(code(&out), 0, "{command}: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{command}: {text}");
        assert!(text.starts_with(starts), "{command}: {text}");
        assert_eq!(stderr(&out), "", "{command}");
        assert_no_bars(&text);
        let out = resetctl(
            dir.path(),
            &[
                "--output",
                "json",
                command,
                "playbooks/credential-dump.yaml",
            ],
        )
        .await;
        assert_eq!(code(&out), 0, "{command}: {}", stderr(&out));
        let doc: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{command}: {e}: {}", stdout(&out)));
        assert!(doc["id"].is_string(), "{command}");
        assert_no_bars(&stderr(&out));
    }
}
