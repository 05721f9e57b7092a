//! The critical directory roles: what the playbook keyword `privileged: { roles: critical }`
//! means. A user holding one of these (actively, or eligibly through PIM when the playbook
//! says so) is never reset automatically.
//!
//! Template ids from Microsoft Entra's built-in roles reference
//! (<https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference>).
//! Template ids are the same in every tenant.

/// (template id, display name) of every role resetctl treats as critical by default.
pub const CRITICAL_ROLES: &[(&str, &str)] = &[
    (
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    (
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    (
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
    ),
    (
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
    ),
    (
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    (
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
    ),
];

/// The display name of a role template id, or the id itself when it is not a known one.
pub fn role_name(template_id: &str) -> &str {
    CRITICAL_ROLES
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(template_id))
        .map_or(template_id, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_case_insensitively_and_unknown_ids_pass_through() {
        assert_eq!(
            role_name("62E90394-69F5-4237-9190-012177145E10"),
            "Global Administrator"
        );
        assert_eq!(
            role_name("00000000-0000-0000-0000-000000000000"),
            "00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn table_has_distinct_well_formed_ids() {
        let mut ids: Vec<&str> = CRITICAL_ROLES.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CRITICAL_ROLES.len());
        assert!(
            ids.iter()
                .all(|id| id.len() == 36 && id.matches('-').count() == 4)
        );
    }
}
