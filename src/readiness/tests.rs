use super::*;
use crate::directory::memory::{MemoryDirectory, Op};

fn registration(upn: &str, capable: bool, methods: &[&str]) -> Registration {
    Registration {
        id: format!("id-{upn}"),
        upn: Some(upn.into()),
        display_name: None,
        is_admin: false,
        sspr_registered: capable,
        sspr_enabled: true,
        sspr_capable: capable,
        mfa_registered: !methods.is_empty(),
        mfa_capable: !methods.is_empty(),
        passwordless_capable: false,
        methods: methods.iter().map(|m| m.to_string()).collect(),
        preferred_mfa_method: None,
        last_updated: None,
        user_type: Some("member".into()),
    }
}

fn tenant() -> MemoryDirectory {
    MemoryDirectory::new()
        .with_user("a@contoso.com")
        .with_user("b@contoso.com")
        .with_user("c@contoso.com")
        .with_contact("a@contoso.com", None, Some("+14255550100"), None)
        .with_contact("b@contoso.com", None, Some("n/a"), None)
        .with_manager("a@contoso.com", "b@contoso.com")
        .with_registration(registration(
            "a@contoso.com",
            true,
            &["microsoftAuthenticatorPush", "softwareOneTimePasscode"],
        ))
        .with_registration(registration("b@contoso.com", true, &["mobilePhone"]))
        // The Global Administrator template id.
        .with_role_assignment("id-c@contoso.com", "62e90394-69f5-4237-9190-012177145e10")
}

#[tokio::test]
async fn findings_counts_and_the_privileged_inventory() {
    let dir = tenant();
    let r = build(&dir).await.unwrap();
    assert_eq!(r.tenant_users, 3);
    assert_eq!(
        r.totals,
        Counts {
            users: 3,
            not_sspr_capable: 1,
            no_mobile: 1,
            unusable_mobile: 1,
            no_manager: 2,
            no_authenticator: 2,
            sms_only: 1,
        }
    );
    assert_eq!(r.departments.get(""), Some(&r.totals));
    let upns: Vec<&str> = r.users.iter().map(|u| u.upn.as_str()).collect();
    assert_eq!(upns, ["b@contoso.com", "c@contoso.com"], "a has no finding");
    let c = &r.users[1].findings;
    assert!(c.not_sspr_capable && c.no_mobile && c.no_authenticator && !c.sms_only);
    assert_eq!(r.privileged.len(), 1);
    assert_eq!(r.privileged[0].upn, "c@contoso.com");
    assert_eq!(r.privileged[0].holdings[0].assignment, "active");
    assert!(!r.privileged[0].sspr_capable);
    // One listing of users, one of the report: no request per user.
    assert_eq!(dir.calls(Op::ListUsersWithManager), 1);
    assert_eq!(dir.calls(Op::RegistrationDetails), 1);
    assert_eq!(dir.calls(Op::GetUser), 0);
}

#[tokio::test]
async fn csv_files_have_their_columns_and_rows() {
    let r = build(&tenant()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("readiness");
    let files = write_csv(&r, &out, crate::report::Existing::Refuse).unwrap();
    assert_eq!(files.len(), 3);
    let users = std::fs::read_to_string(out.join("users.csv")).unwrap();
    let mut lines = users.lines();
    assert_eq!(lines.next().unwrap(), export::USER_COLUMNS.join(","));
    assert_eq!(
        lines.next().unwrap(),
        "id-b@contoso.com,b@contoso.com,b,,no,no,yes,yes,yes,yes,mobilePhone"
    );
    assert_eq!(lines.count(), 1);
    let privileged = std::fs::read_to_string(out.join("privileged.csv")).unwrap();
    assert_eq!(privileged.lines().count(), 2);
    assert!(privileged.contains(",active,,no,no"), "{privileged}");
    let departments = std::fs::read_to_string(out.join("departments.csv")).unwrap();
    assert_eq!(departments.lines().last().unwrap(), "(all),3,1,1,1,2,2,1");
    // An existing file is left alone unless replacing is asked for.
    assert!(write_csv(&r, &out, crate::report::Existing::Refuse).is_err());
    assert!(write_csv(&r, &out, crate::report::Existing::Replace).is_ok());
}

#[test]
fn the_inventory_playbook_validates() {
    assert!(crate::playbook::load_str("readiness", INVENTORY_PLAYBOOK).is_ok());
}
