//! Integration tests of the audit trail: trails written by the real writer (the library's
//! `AuditHandle`), tampered with on disk, and judged by the real `resetctl audit verify`.

use std::fs;
use std::path::{Path, PathBuf};

use resetctl::audit::{self, AuditConfig, AuditHandle, Details, Event, Key, Outcome};
use sha2::{Digest, Sha256};

use crate::util::{code, resetctl_env, resetctl_in, stderr, stdout};

/// Write `n` records to a new trail `name` in `dir` with the real writer.
fn write_trail(dir: &Path, name: &str, n: u64, max_file_bytes: u64, key: Option<Key>) -> PathBuf {
    let path = dir.join(name);
    let mut config = AuditConfig::new(&path);
    config.max_file_bytes = max_file_bytes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let handle = AuditHandle::open_with_key(&config, key).await.unwrap();
        for i in 1..=n {
            let event = Event::new(
                "operator@contoso.com",
                "password.reset",
                format!("user{i}@contoso.com"),
                Outcome::Success,
            )
            .unwrap()
            .with_details(
                Details::new()
                    .with("mode", "scramble")
                    .unwrap()
                    .with("n", i)
                    .unwrap(),
            );
            handle.record(event).await.unwrap();
        }
        handle.close().await.unwrap();
    });
    path
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn put_lines(path: &Path, lines: &[String]) {
    fs::write(path, format!("{}\n", lines.join("\n"))).unwrap();
}

/// Run `audit verify` on `args` in `dir` (also the data directory, so the run store looked
/// for is `dir/runs.sqlite`); return (exit code, stdout, stderr).
fn verify(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["audit", "verify"];
    all.extend_from_slice(args);
    let out = resetctl_env(dir, &all, &[("RESETCTL_DATA_DIR", dir)]);
    (code(&out), stdout(&out), stderr(&out))
}

/// The first part of an `ok:` verdict: records, files and head, without the witness and key.
fn summary(out: &str) -> &str {
    out.split(';').next().unwrap_or(out)
}

/// Assert that verifying the trail `name` in `dir` fails naming `line` and `seq`, with a
/// reason containing `why`.
fn assert_broken(dir: &Path, name: &str, line: u64, seq: u64, why: &str) {
    let (code, out, err) = verify(dir, &[name]);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let prefix = format!("{name}:{line}: record seq {seq}: ");
    assert!(
        out.starts_with(&prefix),
        "expected {prefix:?}, got {out:?} (stderr {err:?})"
    );
    assert!(out.contains(why), "expected {why:?} in {out:?}");
    assert_eq!(out.lines().count(), 1, "one verdict line: {out:?}");
}

#[test]
fn an_intact_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_trail(dir.path(), "audit.jsonl", 20, 1 << 20, None);
    let (code, out, err) = verify(dir.path(), &["audit.jsonl"]);
    assert_eq!(code, 0, "{out}{err}");
    let store = dir.path().join("runs.sqlite");
    assert_eq!(
        out,
        format!(
            "ok: 20 records in 1 files, head seq 20; not witnessed (no run store at {}); unkeyed: proves order, not authorship\n",
            store.display()
        )
    );
}

#[test]
fn one_changed_byte_names_the_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, None);
    let original = lines(&path);
    // In the subject, in the details, in the prev link, in the hash: always record 5.
    for (from, to) in [
        ("user5@", "user6@"),
        ("\"n\":5", "\"n\":7"),
        ("\"outcome\":\"success\"", "\"outcome\":\"failure\""),
    ] {
        let mut l = original.clone();
        assert!(l[4].contains(from));
        l[4] = l[4].replacen(from, to, 1);
        put_lines(&path, &l);
        assert_broken(dir.path(), "audit.jsonl", 5, 5, "edited");
    }
    for field in ["\"prev\":\"", "\"hash\":\""] {
        let mut l = original.clone();
        let at = l[4].find(field).unwrap() + field.len();
        let mut bytes = l[4].clone().into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        l[4] = String::from_utf8(bytes).unwrap();
        put_lines(&path, &l);
        assert_broken(dir.path(), "audit.jsonl", 5, 5, "edited");
    }
    // A record relabelled as keyed does not turn the verdict into "needs a key".
    let mut l = original.clone();
    l[4] = l[4].replacen("\"alg\":\"sha256\"", "\"alg\":\"hmac-sha256\"", 1);
    put_lines(&path, &l);
    assert_broken(
        dir.path(),
        "audit.jsonl",
        5,
        5,
        "algorithm hmac-sha256 differs",
    );
    // A changed seq digit is caught at that line too.
    let mut l = original.clone();
    l[4] = l[4].replacen("\"seq\":5", "\"seq\":9", 1);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 5, 9, "");
    // Broken JSON is named with the seq expected there.
    let mut l = original.clone();
    l[4] = l[4].replacen('{', "[", 1);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 5, 5, "not a valid audit record");
}

#[test]
fn a_deleted_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, None);
    let mut l = lines(&path);
    l.remove(4);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 5, 6, "record seq 5 is missing");
}

#[test]
fn swapped_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, None);
    let mut l = lines(&path);
    l.swap(4, 5);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 5, 6, "out of order");
}

#[test]
fn truncation_is_detected_against_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 20, 1 << 20, None);
    let mut l = lines(&path);
    l.truncate(17);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 18, 18, "truncated");
    // Cutting mid-record is named too.
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() - 30]).unwrap();
    assert_broken(dir.path(), "audit.jsonl", 17, 17, "cut short");
    // A record cut short *after* the head (a write in progress, never acknowledged) is not
    // damage: everything the head names is there.
    let full = write_trail(dir.path(), "live.jsonl", 5, 1 << 20, None);
    let mut text = fs::read_to_string(&full).unwrap();
    text.push_str(&lines(&full)[0][..50]);
    fs::write(&full, text).unwrap();
    let (code, out, _) = verify(dir.path(), &["live.jsonl"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(
            "ok: 5 records in 1 files, head seq 5; the live file ends with an unfinished record"
        ),
        "{out}"
    );
    // Removing the head to hide the truncation does not help.
    fs::remove_file(audit::head_path(&path)).unwrap();
    put_lines(&path, &l);
    let (code, _, err) = verify(dir.path(), &["audit.jsonl"]);
    assert_eq!(code, 1);
    assert!(err.contains("chain head file is missing"), "{err}");
}

#[test]
fn a_record_spliced_in_from_another_trail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_trail(dir.path(), "a.jsonl", 10, 1 << 20, None);
    let b = write_trail(dir.path(), "b.jsonl", 10, 1 << 20, None);
    let (la, lb) = (lines(&a), lines(&b));
    // Replace record 5 by trail b's record 5: its seq fits, its trail does not.
    let mut l = la.clone();
    l[4] = lb[4].clone();
    put_lines(&a, &l);
    assert_broken(dir.path(), "a.jsonl", 5, 5, "another trail");
    // Even as the first record (the head names the trail).
    let mut l = la.clone();
    l[0] = lb[0].clone();
    put_lines(&a, &l);
    assert_broken(dir.path(), "a.jsonl", 1, 1, "another trail");
    // Appended after the last record with the next seq.
    let c = write_trail(dir.path(), "c.jsonl", 11, 1 << 20, None);
    let mut l = la.clone();
    l.push(lines(&c)[10].clone());
    put_lines(&a, &l);
    assert_broken(dir.path(), "a.jsonl", 11, 11, "another trail");
}

#[test]
fn an_inserted_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, None);
    let original = lines(&path);
    // A replayed copy of record 3 inserted after record 7.
    let mut l = original.clone();
    l.insert(7, original[2].clone());
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 8, 3, "repeats");
    // A forged record with the next seq and a made-up hash.
    let mut l = original.clone();
    // (a copy of record 8 with another subject and record 8's hash, placed before record 8).
    let forged = original[7].replacen("user8@", "mallory@", 1);
    l.insert(7, forged);
    put_lines(&path, &l);
    assert_broken(dir.path(), "audit.jsonl", 8, 8, "edited");
}

/// An attacker without the key: rewrite record `index`'s subject, then recompute every link
/// with plain SHA-256 (optionally relabelling the trail as plain) and reseal the head.
fn recompute_chain(path: &Path, index: usize, relabel_plain: bool) {
    let mut l = lines(path);
    l[index] = l[index].replacen("user", "mallory", 1);
    let mut prev: Option<String> = None;
    let mut out = Vec::new();
    for line in &l {
        let body = &line[..line.len() - (",\"hash\":\"".len() + 64 + 2)];
        let mut body = body.to_owned();
        if relabel_plain {
            body = body.replacen("\"alg\":\"hmac-sha256\"", "\"alg\":\"sha256\"", 1);
        }
        if let Some(p) = &prev {
            let at = body.find("\"prev\":\"").unwrap() + 8;
            body.replace_range(at..at + 64, p);
        }
        body.push('}');
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        body.pop();
        out.push(format!("{body},\"hash\":\"{hash}\"}}"));
        prev = Some(hash);
    }
    put_lines(path, &out);
    // Reseal the head with plain SHA-256 too.
    let head = audit::head_path(path);
    let text = fs::read_to_string(&head).unwrap();
    let body = &text.trim_end()[..text.trim_end().len() - (",\"seal\":\"".len() + 64 + 2)];
    let mut body = body.to_owned();
    if relabel_plain {
        body = body.replacen("\"alg\":\"hmac-sha256\"", "\"alg\":\"sha256\"", 1);
    }
    let at = body.find("\"hash\":\"").unwrap() + 8;
    body.replace_range(at..at + 64, prev.as_deref().unwrap());
    body.push('}');
    let seal = hex::encode(Sha256::digest(body.as_bytes()));
    body.pop();
    fs::write(&head, format!("{body},\"seal\":\"{seal}\"}}\n")).unwrap();
}

fn assert_broken_with_key(dir: &Path, prefix: &str, why: &str) {
    let (code, out, err) = verify(dir, &["audit.jsonl", "--key-file", "audit.key"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with(prefix) && out.contains(why), "{out}{err}");
}

#[test]
fn a_keyed_chain_cannot_be_recomputed_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_hex = "5a".repeat(32);
    fs::write(dir.path().join("audit.key"), format!("{key_hex}\n")).unwrap();
    let key = Key::from_hex(&key_hex).unwrap();
    let key_id = key.id();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, Some(key));
    let original = fs::read(&path).unwrap();
    let original_head = fs::read(audit::head_path(&path)).unwrap();

    let (code, out, _) = verify(dir.path(), &["audit.jsonl", "--key-file", "audit.key"]);
    assert_eq!(
        (code, summary(&out)),
        (0, "ok: 10 records in 1 files, head seq 10")
    );
    let keyed = format!("; keyed (hmac-sha256, key id {})\n", key_id);
    assert!(out.ends_with(&keyed), "{out}");
    // Without the key: a clear failure, never "ok".
    let (code, out, err) = verify(dir.path(), &["audit.jsonl"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(!out.contains("ok"), "{out}");
    assert!(err.contains("keyed") && err.contains("--key-file"), "{err}");
    // With another key: "wrong key".
    fs::write(dir.path().join("other.key"), "a5".repeat(32)).unwrap();
    let (code, _, err) = verify(dir.path(), &["audit.jsonl", "--key-file", "other.key"]);
    assert_eq!(code, 4);
    assert!(err.contains("not this trail's key"), "{err}");

    // The attacker recomputes plain SHA-256 links but keeps the keyed label: record 1 is named.
    recompute_chain(&path, 4, false);
    assert_broken_with_key(dir.path(), "audit.jsonl:1: record seq 1: ", "edited");
    // Even when only the tampered record's own link is recomputed, it is the one named.
    fs::write(&path, &original).unwrap();
    fs::write(audit::head_path(&path), &original_head).unwrap();
    let mut l = lines(&path);
    l[4] = l[4].replacen("user5", "mallory", 1);
    let body = format!("{}}}", &l[4][..l[4].len() - 75]);
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    l[4] = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    put_lines(&path, &l);
    assert_broken_with_key(dir.path(), "audit.jsonl:5: record seq 5: ", "edited");

    // The attacker downgrades the whole trail to plain SHA-256: refused when verified with the key.
    fs::write(&path, &original).unwrap();
    fs::write(audit::head_path(&path), &original_head).unwrap();
    recompute_chain(&path, 4, true);
    let (code, out, err) = verify(dir.path(), &["audit.jsonl", "--key-file", "audit.key"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not keyed"), "{err}");
}

#[test]
fn recomputing_a_plain_chain_without_the_head_is_still_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 10, 1 << 20, None);
    let head = fs::read(audit::head_path(&path)).unwrap();
    recompute_chain(&path, 4, false);
    fs::write(audit::head_path(&path), head).unwrap();
    assert_broken(
        dir.path(),
        "audit.jsonl",
        10,
        10,
        "does not match the chain head",
    );
}

#[test]
fn rotation_keeps_the_chain_verifiable_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 60, 2048, None);
    let files = audit::discover(&path).unwrap();
    assert!(files.len() >= 5, "{files:?}");
    // The first record of each file links to the last record of the previous one.
    for pair in files.windows(2) {
        let last = lines(&pair[0]).pop().unwrap();
        let first = lines(&pair[1]).remove(0);
        let hash = &last[last.len() - 66..last.len() - 2];
        assert!(
            first.contains(&format!("\"prev\":\"{hash}\"")),
            "{}",
            pair[1].display()
        );
    }
    let expected = format!("ok: 60 records in {} files, head seq 60", files.len());
    // The live file alone brings its rotated files along; so does --trail.
    assert_eq!(summary(&verify(dir.path(), &["audit.jsonl"]).1), expected);
    assert_eq!(
        summary(&verify(dir.path(), &["--trail", "audit.jsonl"]).1),
        expected
    );
    // A glob's order (audit.jsonl audit.jsonl.1 audit.jsonl.10 audit.jsonl.2 ...) is put right.
    let mut names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let (code, out, err) = verify(dir.path(), &args);
    assert_eq!((code, summary(&out)), (0, expected.as_str()), "{err}");
    // Only rotated files: checked without the head.
    let (code, out, _) = verify(dir.path(), &args[1..]);
    assert_eq!(code, 0);
    assert!(out.contains("head not checked"), "{out}");
    // A whole rotated file deleted: the first record of the next file is named.
    let second = lines(&files[1]);
    let first_of_third = lines(&files[2]).remove(0);
    let seq_of = |line: &str| -> u64 {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["seq"].as_u64().unwrap()
    };
    fs::remove_file(&files[1]).unwrap();
    let third = files[2].file_name().unwrap().to_string_lossy().into_owned();
    let (code, out, _) = verify(dir.path(), &["audit.jsonl"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!(
            "{third}:1: record seq {}: ",
            seq_of(&first_of_third)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("seq {}", seq_of(&second[0]))),
        "{out}"
    );
}

#[test]
fn concurrent_writers_produce_one_continuous_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let config = AuditConfig::new(&path);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seqs = rt.block_on(async {
        let handle = AuditHandle::open_with_key(&config, None).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..100u32 {
            let h = handle.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..50u32 {
                    let event = Event::new(
                        format!("task{t}"),
                        "test.write",
                        format!("item{i}"),
                        Outcome::Success,
                    )
                    .unwrap()
                    .with_details(Details::new().with("i", i).unwrap());
                    seqs.push(h.record(event).await.unwrap().seq);
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let seqs = task.await.unwrap();
            // Each caller's own records are in order.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            all.extend(seqs);
        }
        handle.close().await.unwrap();
        all
    });
    let mut seqs = seqs;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=5000).collect::<Vec<u64>>());
    let (code, out, err) = verify(dir.path(), &["audit.jsonl"]);
    assert_eq!(
        (code, summary(&out)),
        (0, "ok: 5000 records in 1 files, head seq 5000"),
        "{err}"
    );
}

#[test]
fn no_secret_reaches_a_record() {
    // Secret-looking detail keys are refused before anything is queued (the compile-time half
    // is the `compile_fail` doctest in `audit::value`).
    for key in [
        "password",
        "newPassword",
        "client_secret",
        "temporaryAccessPass",
        "tap",
        "access_token",
        "assertion",
    ] {
        let err = Details::new().with(key, "Hunter2-S3cret!").unwrap_err();
        assert!(
            matches!(err, audit::AuditError::SecretKey { .. }),
            "{key}: {err:?}"
        );
        assert!(!err.to_string().contains("Hunter2"));
    }
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert!(Details::new().with("note", jwt).is_err());
    // Actor and subject are checked for tokens too, and no refusal echoes the value.
    let err = Event::new("resetctl", "token.issue", jwt, Outcome::Success).unwrap_err();
    assert!(
        matches!(err, audit::AuditError::SecretValue { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("eyJ"), "{err}");
}

#[test]
fn without_files_verify_checks_the_data_directorys_trail() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = verify(dir.path(), &[]);
    assert_eq!(code, 1);
    let expected = dir.path().join("audit.jsonl");
    assert!(
        flat(&err).contains(&format!("{}: no such audit trail", expected.display())),
        "{err}"
    );
    write_trail(dir.path(), "audit.jsonl", 2, 1 << 20, None);
    let (code, out, err) = verify(dir.path(), &[]);
    assert_eq!(
        (code, summary(&out)),
        (0, "ok: 2 records in 1 files, head seq 2"),
        "{err}"
    );
    let (code, _, err) = verify(dir.path(), &["missing.jsonl"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.jsonl"), "{err}");
}

#[test]
fn json_output_carries_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 4, 1 << 20, None);
    let (code, out, _) = verify(dir.path(), &["--output", "json", "audit.jsonl"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["records"].as_u64(),
            v["head_seq"].as_u64()
        ),
        (Some(true), Some(4), Some(4))
    );
    let mut l = lines(&path);
    l.remove(1);
    put_lines(&path, &l);
    let (code, out, _) = verify(dir.path(), &["--output", "json", "audit.jsonl"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["line"].as_u64(), v["seq"].as_u64()),
        (Some(false), Some(2), Some(3))
    );
}

#[test]
fn export_passes_verified_records_through_as_jsonl_or_cef() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_trail(dir.path(), "audit.jsonl", 30, 2048, None);
    let files = audit::discover(&path).unwrap();
    assert!(files.len() > 1);
    let all: String = files
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    let out = resetctl_in(
        dir.path(),
        &["audit", "export", "--format", "jsonl", "audit.jsonl"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), all);
    let out = resetctl_in(
        dir.path(),
        &[
            "audit",
            "export",
            "--format",
            "cef",
            "--trail",
            "audit.jsonl",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let cef = stdout(&out);
    assert_eq!(cef.lines().count(), 30);
    let first = cef.lines().next().unwrap();
    assert!(first.starts_with("CEF:0|resetctl|resetctl|"), "{first}");
    assert!(
        first.contains("|password.reset|password.reset success|3|"),
        "{first}"
    );
    assert!(first.contains(" suser=operator@contoso.com duser=user1@contoso.com act=password.reset outcome=success externalId=1 "), "{first}");
    // Nothing is exported from a tampered trail.
    let live = lines(&path);
    let mut l = live.clone();
    l[0] = l[0].replacen("operator", "0perator", 1);
    put_lines(&path, &l);
    let out = resetctl_in(
        dir.path(),
        &["audit", "export", "--format", "cef", "audit.jsonl"],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).starts_with("audit.jsonl:1: record seq"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("CEF:"));
}

/// Throughput figure (not a pass/fail check): `cargo test --release --test integration
/// audit::throughput -- --ignored --nocapture`. Set AUDIT_KEEP_DIR to keep the trail there.
#[test]
#[ignore = "prints a figure; run on demand"]
fn throughput() {
    let keep = std::env::var_os("AUDIT_KEEP_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_owned());
    fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Without and with the run store as witness (one upsert per batch).
    for (tasks, per_task, witnessed) in [
        (1u64, 2000u64, false),
        (1, 2000, true),
        (100, 200, false),
        (100, 200, true),
    ] {
        let path = dir.join(format!("bench-{tasks}-{witnessed}.jsonl"));
        let mut config = AuditConfig::new(&path);
        config.max_file_bytes = 1 << 20;
        let witness: Option<std::sync::Arc<dyn audit::Witness>> = witnessed.then(|| {
            let store = resetctl::store::SqliteStore::open(&dir.join("bench.sqlite")).unwrap();
            std::sync::Arc::new(store.audit_witness(&path).unwrap()) as _
        });
        let start = std::time::Instant::now();
        rt.block_on(async {
            let handle = AuditHandle::open_with(&config, None, witness)
                .await
                .unwrap();
            let mut joins = Vec::new();
            for t in 0..tasks {
                let h = handle.clone();
                joins.push(tokio::spawn(async move {
                    for i in 0..per_task {
                        let event = Event::new(
                            "resetctl",
                            "password.reset",
                            format!("user{t}-{i}@contoso.com"),
                            Outcome::Success,
                        )
                        .unwrap()
                        .with_details(Details::new().with("i", i).unwrap());
                        h.record(event).await.unwrap();
                    }
                }));
            }
            for j in joins {
                j.await.unwrap();
            }
            handle.close().await.unwrap();
        });
        let n = tasks * per_task;
        let secs = start.elapsed().as_secs_f64();
        let verify_start = std::time::Instant::now();
        let report = audit::verify_trail(&path, None).unwrap();
        assert_eq!(report.records, n);
        println!(
            "{tasks} concurrent caller(s), witness {witnessed}: {n} durable records in {secs:.2} s = {:.0} records/s; verify {:.0} records/s",
            n as f64 / secs,
            n as f64 / verify_start.elapsed().as_secs_f64()
        );
    }
}

/// A `resetctl` command in the crate root (for the shipped playbooks) with `data` as its data
/// directory (run store `data/runs.sqlite`, trail `data/audit.jsonl`).
fn in_data(data: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(crate::util::bin());
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RESETCTL_DATA_DIR", data)
        .env_remove("RESETCTL_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    command
}

fn run_in(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = in_data(data, args).output().unwrap();
    (code(&out), stdout(&out), stderr(&out))
}

/// Store a planned run to approve (`runs approve` reads only its id, hash and name).
fn stored_run(data: &Path) -> String {
    use resetctl::store::{NewRun, PlanDocument, RunId, RunStore, SqliteStore};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&data.join("runs.sqlite")).unwrap();
        store
            .create_run(NewRun {
                id: RunId("20261123T100000Z-abcdef".into()),
                created_at: jiff::Timestamp::now(),
                playbook_name: "password-spray".into(),
                playbook_path: "playbooks/password-spray.yaml".into(),
                tenant: "demo".into(),
                plan_hash: "0".repeat(64),
                plan: PlanDocument::text("{}"),
            })
            .await
            .unwrap();
    });
    "20261123T100000Z-abcdef".into()
}

/// Every record of the trail at `path` (all files, chain order) as JSON.
fn records(path: &Path) -> Vec<serde_json::Value> {
    audit::discover(path)
        .unwrap()
        .iter()
        .flat_map(|f| lines(f))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

#[test]
fn processes_append_to_one_trail_while_a_run_executes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let trail = data.join("audit.jsonl");
    let run_id = stored_run(data);
    // A real run on the demo tenant, writing hundreds of records.
    let run = in_data(
        data,
        &[
            "run",
            "playbooks/credential-dump.yaml",
            "--tenant",
            "demo",
            "--execute",
            "--yes",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let started = std::time::Instant::now();
    while !fs::read_to_string(&trail).is_ok_and(|t| t.contains("\"action\":\"run.execute\"")) {
        assert!(started.elapsed().as_secs() < 60, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A writer of this process holds the trail open throughout (as a run does), rotating it
    // every 8 KiB under the processes' feet.
    let mut config = AuditConfig::new(&trail);
    config.max_file_bytes = 8192;
    let held = rt
        .block_on(AuditHandle::open_with_key(&config, None))
        .unwrap();
    let writer = {
        let held = held.clone();
        rt.spawn(async move {
            for i in 0..200u32 {
                let event =
                    Event::new("test", "test.write", format!("item{i}"), Outcome::Success).unwrap();
                held.record(event).await.unwrap();
            }
        })
    };
    // Meanwhile: approvals and plans, each its own process, all at once.
    let spawn = |args: &[&str]| {
        in_data(data, args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = Vec::new();
    for n in 0..6 {
        let operator = format!("operator{n}@contoso.com");
        children.push(spawn(&["runs", "approve", &run_id, "--as", &operator]));
    }
    for name in ["credential-dump", "password-spray"] {
        let playbook = format!("playbooks/{name}.yaml");
        children.push(spawn(&["plan", &playbook, "--tenant", "demo"]));
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    rt.block_on(writer).unwrap();
    rt.block_on(held.close()).unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "run: {}", stderr(&out));

    // One chain, intact and witnessed by the store every process used.
    let (code, out, err) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("witnessed by the run store up to seq"),
        "{out}"
    );
    let all = records(&trail);
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(
        audit::discover(&trail).unwrap().len() > 2,
        "rotated meanwhile"
    );
    // Every record of every writer exactly once.
    let of = |action: &str| -> Vec<String> {
        let mut subjects: Vec<String> = all
            .iter()
            .filter(|r| r["action"] == action)
            .map(|r| format!("{}|{}", r["actor"], r["subject"]))
            .collect();
        subjects.sort();
        subjects
    };
    let items = of("test.write");
    assert_eq!(items.len(), 200);
    assert_eq!(
        items
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        200
    );
    let approvals = of("run.approve");
    let expected: Vec<String> = (0..6)
        .map(|n| format!("\"operator{n}@contoso.com\"|\"{run_id}\""))
        .collect();
    assert_eq!(approvals, expected);
    assert_eq!(of("run.plan").len(), 3, "the run's plan and two more");
    assert_eq!(of("run.execute").len(), 1);
    assert_eq!(of("run.end").len(), 1);
}

#[test]
fn verify_says_whether_the_trail_is_keyed() {
    let dir = tempfile::tempdir().unwrap();
    // `audit keygen` makes an owner-only key file and never overwrites one.
    let out = resetctl_in(dir.path(), &["audit", "keygen", "audit.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let key = Key::from_file(&dir.path().join("audit.key")).unwrap();
    assert!(stdout(&out).contains(&key.id()), "{}", stdout(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("audit.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = fs::read(dir.path().join("audit.key")).unwrap();
    let again = resetctl_in(dir.path(), &["audit", "keygen", "audit.key"]);
    assert_eq!(code(&again), 1);
    assert!(
        stderr(&again).contains("never overwritten"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read(dir.path().join("audit.key")).unwrap(), before);

    write_trail(dir.path(), "keyed.jsonl", 3, 1 << 20, Some(key.clone()));
    write_trail(dir.path(), "plain.jsonl", 3, 1 << 20, None);
    let (code, out, _) = verify(dir.path(), &["keyed.jsonl", "--key-file", "audit.key"]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with(&format!("; keyed (hmac-sha256, key id {})\n", key.id())),
        "{out}"
    );
    let (_, out, _) = verify(dir.path(), &["plain.jsonl"]);
    assert!(
        out.ends_with("; unkeyed: proves order, not authorship\n"),
        "{out}"
    );
    for (file, keyed) in [("keyed.jsonl", true), ("plain.jsonl", false)] {
        let mut args = vec!["--output", "json", file];
        if keyed {
            args.extend(["--key-file", "audit.key"]);
        }
        let (_, out, _) = verify(dir.path(), &args);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["keyed"], keyed, "{out}");
        assert_eq!(v["alg"], if keyed { "hmac-sha256" } else { "sha256" });
        assert_eq!(v["key_id"].as_str().is_some(), keyed);
    }
}

/// An error message as one line: miette's wrapping and margin removed.
fn flat(err: &str) -> String {
    err.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `runs approve` by `operator`: (exit code, stderr as one line).
fn approve(data: &Path, run: &str, operator: &str) -> (i32, String) {
    let (code, _, err) = run_in(data, &["runs", "approve", run, "--as", operator]);
    (code, flat(&err))
}

#[test]
fn a_vanished_trail_is_caught_and_refused_until_a_new_trail_is_started() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let trail = data.join("audit.jsonl");
    let run = stored_run(data);
    for who in ["alice", "bob", "carol"] {
        assert_eq!(approve(data, &run, who).0, 0);
    }
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("witnessed by the run store up to seq 3"),
        "{out}"
    );

    // Emptied and its head deleted: from its files alone, a trail never written.
    fs::write(&trail, "").unwrap();
    fs::remove_file(audit::head_path(&trail)).unwrap();
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("witnessed up to seq 3") && out.contains("no record of it is left"),
        "{out}"
    );
    // The next writing command refuses, naming the recovery; nothing is written.
    let (code, err) = approve(data, &run, "dave");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("resetctl audit new-trail"), "{err}");
    assert_eq!(fs::read(&trail).unwrap(), b"");
    // Wholly deleted: the same.
    fs::remove_file(&trail).unwrap();
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 1);
    assert!(out.contains("no file of it is left"), "{out}");
    let (code, out, _) = verify(data, &["--output", "json", "audit.jsonl"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["witnessed_seq"].as_u64()),
        (Some(false), Some(3))
    );

    // The operator starts a new trail explicitly; its first record says what happened.
    let (code, out, err) = run_in(
        data,
        &[
            "audit",
            "new-trail",
            "--as",
            "alice",
            "--reason",
            "trail wiped on host-7",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("witnessed trail") && out.contains("up to seq 3"),
        "{out}"
    );
    assert_eq!(approve(data, &run, "dave").0, 0);
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("witnessed by the run store up to seq 2"),
        "{out}"
    );
    let first = &records(&trail)[0];
    assert_eq!(first["action"], "audit.trail.new");
    assert_eq!(first["actor"], "alice");
    assert_eq!(first["details"]["witnessed_seq"], 3);
    assert_eq!(first["details"]["reason"], "trail wiped on host-7");
}

#[test]
fn a_truncated_or_rechained_plain_trail_fails_against_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let trail = data.join("audit.jsonl");
    let run = stored_run(data);
    for who in ["alice", "bob", "carol", "dave"] {
        assert_eq!(approve(data, &run, who).0, 0);
    }
    let original = fs::read(&trail).unwrap();
    let original_head = fs::read(audit::head_path(&trail)).unwrap();
    // Rewritten and rechained with plain SHA-256, head re-sealed: the files agree with each
    // other, so only the witness can object.
    let forged = String::from_utf8(original.clone()).unwrap().replacen(
        "\"actor\":\"bob\"",
        "\"actor\":\"eve\"",
        1,
    );
    fs::write(&trail, forged).unwrap();
    recompute_chain(&trail, 3, false);
    let store = data.join("elsewhere.sqlite");
    let (code, out, _) = verify(data, &["audit.jsonl", "--store", store.to_str().unwrap()]);
    assert_eq!(code, 4, "an explicit store that does not exist: {out}");
    for suffix in ["", "-wal", "-shm"] {
        let from = data.join(format!("runs.sqlite{suffix}"));
        if from.exists() {
            fs::rename(from, format!("{}{suffix}", store.display())).unwrap();
        }
    }
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 0, "without the store: ok: {out}");
    assert!(out.contains("not witnessed") && out.contains("proves order, not authorship"));
    let (code, out, _) = verify(data, &["audit.jsonl", "--store", store.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rewritten"), "{out}");
    // Truncated to two records with a re-sealed head.
    fs::write(&trail, &original).unwrap();
    fs::write(audit::head_path(&trail), &original_head).unwrap();
    let mut l = lines(&trail);
    l.truncate(2);
    put_lines(&trail, &l);
    recompute_chain(&trail, 1, false);
    let (code, out, _) = verify(data, &["audit.jsonl", "--store", store.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the trail ends at seq 2"), "{out}");
}

#[test]
fn a_lost_head_is_rebuilt_only_by_an_explicit_reseal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let trail = data.join("audit.jsonl");
    let run = stored_run(data);
    for who in ["alice", "bob"] {
        assert_eq!(approve(data, &run, who).0, 0);
    }
    fs::remove_file(audit::head_path(&trail)).unwrap();
    let (code, _, err) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 1);
    assert!(flat(&err).contains("resetctl audit reseal"), "{err}");
    let (code, err) = approve(data, &run, "carol");
    assert_eq!(code, 4);
    assert!(err.contains("chain head file is missing"), "{err}");
    let reseal = [
        "audit",
        "reseal",
        "--as",
        "alice",
        "--reason",
        "head lost in restore",
    ];
    let (code, out, err) = run_in(data, &reseal);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("at seq 2 (the head was missing)"), "{out}");
    // Done once; a valid head is not rebuilt again (exit 3: refused).
    let (code, _, err) = run_in(data, &reseal);
    assert_eq!(code, 3);
    assert!(flat(&err).contains("nothing to reseal"), "{err}");
    assert_eq!(approve(data, &run, "carol").0, 0);
    let (code, out, _) = verify(data, &["audit.jsonl"]);
    assert_eq!(code, 0, "{out}");
    let all = records(&trail);
    assert_eq!(all.len(), 4);
    assert_eq!(all[2]["action"], "audit.head.reseal");
    assert_eq!(all[2]["details"]["head_was"], "missing");
}

#[test]
fn the_configured_trail_is_verified_and_recovered_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(dir.path().join("trail")).unwrap();
    let run = stored_run(&{
        fs::create_dir_all(&data).unwrap();
        data.clone()
    });
    let out = resetctl_in(dir.path(), &["audit", "keygen", "audit.key"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let key = Key::from_file(&dir.path().join("audit.key")).unwrap();
    let config = dir.path().join("resetctl.yaml");
    fs::write(
        &config,
        "audit:\n  path: trail/keyed.jsonl\n  key_file: audit.key\n",
    )
    .unwrap();
    let env: [(&str, &Path); 2] = [("RESETCTL_DATA_DIR", &data), ("RESETCTL_CONFIG", &config)];
    let resetctl = |args: &[&str]| {
        let out = resetctl_env(dir.path(), args, &env);
        (code(&out), stdout(&out), flat(&stderr(&out)))
    };
    assert_eq!(resetctl(&["runs", "approve", &run, "--as", "alice"]).0, 0);
    // No file named: the configured trail, with the configured key, against the store.
    let (code, out, err) = resetctl(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("witnessed by the run store up to seq 1")
            && out.ends_with(&format!("; keyed (hmac-sha256, key id {})\n", key.id())),
        "{out}"
    );
    // A new trail at the configured place is keyed with the configured key too.
    let trail = dir.path().join("trail/keyed.jsonl");
    fs::remove_file(&trail).unwrap();
    fs::remove_file(audit::head_path(&trail)).unwrap();
    let (code, out, _) = resetctl(&["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("witnessed up to seq 1"), "{out}");
    let (code, out, err) = resetctl(&["audit", "new-trail", "--as", "alice", "--reason", "lost"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        fs::read_to_string(&trail)
            .unwrap()
            .contains("\"alg\":\"hmac-sha256\"")
    );
    assert_eq!(resetctl(&["runs", "approve", &run, "--as", "bob"]).0, 0);
    let (code, out, _) = resetctl(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("witnessed by the run store up to seq 2"),
        "{out}"
    );
}
