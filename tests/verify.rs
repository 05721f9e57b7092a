//! The MFA push providers of the verification flow (Duo Auth API v2, Okta Verify) against
//! the emulated tenant's push sinks over real HTTP on 127.0.0.1: each scripted answer
//! (approve, deny, time out, not enrolled), and credentials or signatures that are wrong.

use std::time::Duration;

use resetctl::emulator::sinks::push::{Script, scripted};
use resetctl::emulator::{ConnectionInfo, EmulatorConfig, RunningEmulator};
use resetctl::providers::push::duo::{self, Digest, DuoPush, DuoSettings};
use resetctl::providers::push::okta::{OktaPush, OktaSettings};
use resetctl::providers::push::{PushError, PushProvider, PushStatus, await_answer};
use resetctl::verify::{Event, PushAnswer};
use secrecy::SecretString;
use serde_json::Value;

use crate::util::{http, inspect, start_emulator, token};

const SEED: u64 = 11;

/// An emulator of 40 users whose pushes expire after 60 s / `scale` (Duo) and
/// 300 s / `scale` (Okta).
async fn emulator(scale: f64) -> RunningEmulator {
    let mut config = EmulatorConfig::seeded(40, SEED);
    config.time_scale = scale;
    start_emulator(config).await
}

/// A user of the tenant whose scripted answer is `script`.
async fn user_who(info: &ConnectionInfo, script: Script) -> String {
    let http = http();
    let bearer = token(&http, info, 0).await;
    let page: Value = http
        .get(format!(
            "{}/users?$select=userPrincipalName,accountEnabled&$top=40",
            info.graph_url
        ))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str())
        .find(|upn| scripted(SEED, upn) == script)
        .unwrap_or_else(|| panic!("no user scripted {script:?}"))
        .to_string()
}

fn duo_client(info: &ConnectionInfo, secret: &str, digest: Digest) -> DuoPush {
    DuoPush::new(
        DuoSettings {
            base_url: info.channels.push.duo_base_url.clone(),
            integration_key: info.channels.push.duo_integration_key.clone(),
            secret_key: SecretString::from(secret.to_string()),
            digest,
            push_type: "Password reset".into(),
        },
        http(),
    )
    .unwrap()
}

fn okta_client(info: &ConnectionInfo, token: &str) -> OktaPush {
    OktaPush::new(
        OktaSettings {
            base_url: info.channels.push.okta_base_url.clone(),
            api_token: SecretString::from(token.to_string()),
        },
        http(),
    )
    .unwrap()
}

/// Send a push to `user` and wait (polling every 20 ms) up to `deadline`.
async fn push(provider: &dyn PushProvider, user: &str, deadline: Duration) -> PushStatus {
    let sent = provider.send(user).await.unwrap();
    await_answer(provider, sent, Duration::from_millis(20), deadline)
        .await
        .unwrap()
}

async fn every_scripted_answer(emu: &RunningEmulator, provider: &dyn PushProvider) {
    let info = emu.info();
    let long = Duration::from_secs(10);
    for (script, want) in [
        (Script::Approve, PushStatus::Approved),
        (Script::Deny, PushStatus::Denied),
        // Expires at the provider (the emulator runs 600 times faster).
        (Script::Timeout, PushStatus::TimedOut),
    ] {
        let user = user_who(info, script).await;
        let got = push(provider, &user, long).await;
        assert_eq!(got, want, "{} {user} scripted {script:?}", provider.name());
    }
    let user = user_who(info, Script::NotEnrolled).await;
    assert_eq!(provider.send(&user).await.unwrap(), PushStatus::NotEnrolled);
    assert_eq!(
        provider.send("nobody@nowhere.example").await.unwrap(),
        PushStatus::NotEnrolled
    );
    // The verification flow's events.
    assert_eq!(
        PushStatus::Denied.event(),
        Some(Event::PushAnswered {
            answer: PushAnswer::Denied
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_pushes_are_approved_denied_or_time_out_as_scripted() {
    let emu = emulator(600.0).await;
    let info = emu.info().clone();
    let secret = info.channels.push.duo_secret_key.clone();
    every_scripted_answer(&emu, &duo_client(&info, &secret, Digest::Sha1)).await;
    // SHA-512 signatures are accepted too.
    let sha512 = duo_client(&info, &secret, Digest::Sha512);
    let user = user_who(&info, Script::Approve).await;
    assert_eq!(
        push(&sha512, &user, Duration::from_secs(10)).await,
        PushStatus::Approved
    );
    // The outbox kept each push, never a key or a signature.
    let outbox = inspect(&info, "outbox?channel=push").await;
    let pushes = outbox["messages"].as_array().unwrap();
    assert_eq!(pushes.len(), 4, "{outbox}");
    assert!(pushes.iter().all(|p| p["provider"] == "duo"));
    assert_eq!(pushes[0]["payload"]["factor"], "push");
    assert_eq!(pushes[0]["payload"]["device"], "auto");
    assert_eq!(pushes[0]["payload"]["async"], true);
    assert_eq!(pushes[0]["content"], "Password reset");
    assert!(!outbox.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_ends_a_duo_push_nobody_answers() {
    let emu = emulator(1.0).await;
    let info = emu.info().clone();
    let duo = duo_client(&info, &info.channels.push.duo_secret_key, Digest::Sha1);
    let user = user_who(&info, Script::Timeout).await;
    let started = std::time::Instant::now();
    let got = push(&duo, &user, Duration::from_millis(300)).await;
    assert_eq!(got, PushStatus::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duo_refuses_a_bad_signature_and_a_tampered_request() {
    let emu = emulator(600.0).await;
    let info = emu.info().clone();
    let user = user_who(&info, Script::Approve).await;
    let wrong = "0123456789012345678901234567890123456789";
    let err = duo_client(&info, wrong, Digest::Sha1)
        .send(&user)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PushError::Unauthorized { status: 401, message, .. }
            if message.contains("Invalid signature")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(wrong));

    // A request signed for one user and sent for another.
    let push = &info.channels.push;
    let host = push
        .duo_base_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let date = "Fri, 07 Dec 2012 17:18:00 -0000";
    let canonical = duo::canonical(
        date,
        "POST",
        &host,
        "/duo/auth/v2/preauth",
        &duo::canon_params(&[("username", &user)]),
    );
    let sig = duo::sign(push.duo_secret_key.as_bytes(), &canonical, Digest::Sha1);
    let send = |username: String| {
        http()
            .post(format!("{}/auth/v2/preauth", push.duo_base_url))
            .header("date", date)
            .basic_auth(&push.duo_integration_key, Some(sig.clone()))
            .form(&[("username", username)])
            .send()
    };
    let ok = send(user.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["response"]["result"], "auth", "{body}");
    let tampered = send("someone.else@example.com".into()).await.unwrap();
    assert_eq!(tampered.status(), 401);
    let body: Value = tampered.json().await.unwrap();
    assert_eq!(
        (body["stat"].as_str(), body["code"].as_u64()),
        (Some("FAIL"), Some(40103))
    );
    // A wrong integration key is its own error.
    let other_key = http()
        .post(format!("{}/auth/v2/preauth", push.duo_base_url))
        .header("date", date)
        .basic_auth("DIWRONGWRONGWRONGWR", Some(sig.clone()))
        .form(&[("username", user.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = other_key.json().await.unwrap();
    assert_eq!(body["code"], 40102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_verify_pushes_are_approved_denied_or_time_out_as_scripted() {
    let emu = emulator(600.0).await;
    let info = emu.info().clone();
    let okta = okta_client(&info, &info.channels.push.okta_api_token);
    every_scripted_answer(&emu, &okta).await;
    let outbox = inspect(&info, "outbox?channel=push").await;
    let pushes = outbox["messages"].as_array().unwrap();
    assert_eq!(pushes.len(), 3, "{outbox}");
    assert!(pushes.iter().all(|p| p["provider"] == "okta"));
    assert!(
        !outbox
            .to_string()
            .contains(&info.channels.push.okta_api_token)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_refuses_a_wrong_token() {
    let emu = emulator(600.0).await;
    let info = emu.info().clone();
    let user = user_who(&info, Script::Approve).await;
    let wrong = "00wrong-token-wrong-token";
    let err = okta_client(&info, wrong).send(&user).await.unwrap_err();
    assert!(
        matches!(&err, PushError::Unauthorized { status: 401, message, .. }
            if message == "Invalid token provided"),
        "{err:?}"
    );
    assert!(!err.to_string().contains(wrong));
    let outbox = inspect(&info, "outbox?channel=push").await;
    assert!(outbox["messages"].as_array().unwrap().is_empty());
}

/// The flow's actions carried out against the emulated Duo: the push the machine asks for
/// goes out, and the answer comes back as the machine's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_drives_a_real_push_and_reads_its_answer() {
    use resetctl::verify::{
        Action, Context, EscalationReason, Flow, Manager, Person, Policy, State, Via, step,
    };
    let emu = emulator(600.0).await;
    let info = emu.info().clone();
    let duo = duo_client(&info, &info.channels.push.duo_secret_key, Digest::Sha1);
    let policy = Policy::default();
    for script in [Script::Approve, Script::Deny] {
        let upn = user_who(&info, script).await;
        let context = Context {
            user: Person {
                id: "user-1".into(),
                upn: upn.clone(),
            },
            requester: Person {
                id: "helpdesk-1".into(),
                upn: "helpdesk@example.com".into(),
            },
            manager: Some(Manager {
                person: Person {
                    id: "manager-1".into(),
                    upn: "manager@example.com".into(),
                },
                mobile: Some("+14255550123".into()),
            }),
            push_enrolled: true,
            device_available: true,
            manager_fallback: true,
            high_risk: false,
            in_open_mass_reset: false,
            critical_role: false,
            previous_request_at: None,
            recent_pushes: Vec::new(),
            recent_denials: Vec::new(),
        };
        let now = jiff::Timestamp::now();
        let (flow, actions) =
            step(&Flow::new("req-1", context), &Event::Start, now, &policy).unwrap();
        let Some(Action::SendPush { user }) = actions.first() else {
            panic!("no push: {actions:?}");
        };
        let status = push(&duo, &user.upn, Duration::from_secs(10)).await;
        let event = status.event().unwrap();
        let (flow, actions) = step(&flow, &event, now, &policy).unwrap();
        match script {
            Script::Approve => {
                assert!(matches!(flow.state, State::Verified { via: Via::Push, .. }));
                assert!(matches!(actions[1], Action::ResetPassword { .. }));
            }
            _ => {
                let State::Escalated {
                    reasons,
                    suspicious,
                    ..
                } = &flow.state
                else {
                    panic!("{:?}", flow.state);
                };
                assert_eq!(reasons, &[EscalationReason::PushDenied]);
                assert!(suspicious);
                assert!(
                    !actions
                        .iter()
                        .any(|a| matches!(a, Action::SendManagerCard { .. })),
                    "a denial never reaches the manager"
                );
            }
        }
    }
}
