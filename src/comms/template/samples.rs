//! Sample contexts: a plain user at a plain organisation, used by `resetctl validate` to render
//! every template a playbook names, and by the golden tests (with hostile and non-Latin names).

use secrecy::SecretString;

use crate::comms::context::{
    ActionsTaken, FlowContext, Incident, ManualEntry, NoticeContext, Organisation, Person,
    RunContext, RunCounts, SecretContext,
};

use super::SecretKind;

/// The organisation samples use when the configuration names none.
pub fn sample_organisation() -> Organisation {
    Organisation {
        name: "Contoso".into(),
        helpdesk_phone: "+1 425 555 0100".into(),
        helpdesk_url: "https://help.contoso.com".into(),
        sspr_url: "https://aka.ms/sspr".into(),
        verify_url: "https://intranet.contoso.com/security/notices".into(),
    }
}

impl Person {
    /// A plain user: Alex Wilber.
    pub fn sample() -> Person {
        Person {
            display_name: "Alex Wilber".into(),
            given_name: Some("Alex".into()),
            upn: "alex.wilber@contoso.com".into(),
        }
    }

    /// A plain manager: Megan Bowen.
    pub fn sample_manager() -> Person {
        Person {
            display_name: "Megan Bowen".into(),
            given_name: Some("Megan".into()),
            upn: "megan.bowen@contoso.com".into(),
        }
    }
}

impl Incident {
    /// A credential-dump run with a ticket.
    pub fn sample() -> Incident {
        Incident {
            playbook: "credential-dump".into(),
            description: Some("Credentials of Contoso users found in a public dump.".into()),
            run_id: "0192f3a4-5b6c-7d8e-9f01-23456789abcd".into(),
            reference: Some("INC-4711".into()),
            started_at: "2025-03-14T09:26:53Z".into(),
        }
    }
}

impl SecretContext {
    /// A sample secret of `kind` (a fixed, obviously fake value).
    pub fn sample(kind: SecretKind) -> SecretContext {
        match kind {
            SecretKind::TemporaryPassword => SecretContext {
                kind: "temporary_password",
                value: SecretString::from("Kq7#vR2m-Tx9pL4w"),
                lifetime_minutes: None,
                usable_once: None,
            },
            SecretKind::TemporaryAccessPass => SecretContext {
                kind: "temporary_access_pass",
                value: SecretString::from("W7h+Qz3R"),
                lifetime_minutes: Some(480),
                usable_once: Some(true),
            },
        }
    }
}

impl NoticeContext {
    /// A notice to a plain user after a scrambled reset with sessions revoked.
    pub fn sample() -> NoticeContext {
        NoticeContext {
            org: sample_organisation(),
            recipient: Person::sample(),
            recipient_role: "user",
            user: Person::sample(),
            incident: Incident::sample(),
            actions: ActionsTaken {
                password_reset: true,
                must_change_password: true,
                sessions_revoked: true,
                mfa_reregistration: false,
                confirmed_compromised: true,
                access_pass: false,
            },
            secret: None,
        }
    }
}

impl RunContext {
    /// A finished run with a few failures, throttling and a manual queue.
    pub fn sample() -> RunContext {
        let entry = |upn: &str, name: &str, reason: &str| ManualEntry {
            upn: upn.into(),
            display_name: name.into(),
            reason: reason.into(),
        };
        RunContext {
            org: sample_organisation(),
            incident: Incident::sample(),
            state: "finished",
            counts: RunCounts {
                planned: 120,
                done: 120,
                succeeded: 118,
                failed: 2,
                manual: 9,
                not_started: 0,
                throttled: 14,
                messages_sent: 236,
                messages_failed: 1,
            },
            manual: vec![
                entry(
                    "admin.adele@contoso.com",
                    "Adele Vance",
                    "holds Global Administrator",
                ),
                entry("lee.gu@contoso.com", "Lee Gu", "synced from on-premises"),
            ],
            failures: vec![entry(
                "diego.siciliani@contoso.com",
                "Diego Siciliani",
                "reset_password failed: 403 Authorization_RequestDenied",
            )],
            files: vec![
                "/var/lib/resetctl/runs/0192f3a4/results.csv".into(),
                "/var/lib/resetctl/runs/0192f3a4/manual-queue.csv".into(),
                "/var/lib/resetctl/runs/0192f3a4/summary.md".into(),
            ],
            elapsed_seconds: Some(372),
        }
    }
}

impl FlowContext {
    /// A manager approval request for a password reset a help desk agent asked for.
    pub fn sample() -> FlowContext {
        FlowContext {
            org: sample_organisation(),
            recipient: Person::sample_manager(),
            user: Person::sample(),
            requester: "helpdesk agent jdoe".into(),
            request_id: "req-7f3c2a".into(),
            outcome_wanted: "password_reset",
            reason: "User locked out after travelling; called from a new phone.".into(),
            approve_url: Some("https://resetctl.contoso.com/a/req-7f3c2a?sig=SAMPLE".into()),
            deny_url: Some("https://resetctl.contoso.com/d/req-7f3c2a?sig=SAMPLE".into()),
            expires_minutes: Some(30),
            result: Some("approved".into()),
            ticket: Some("INC-4712".into()),
            secret: None,
        }
    }
}
