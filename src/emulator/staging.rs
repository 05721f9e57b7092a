//! What a tabletop exercise stages in a running emulated tenant before it plans: a user of
//! a given kind picked from the directory, then put where the playbook's targets will find
//! it (a group it targets, or Identity Protection's list of risky users). Only the
//! emulator's own tenant is touched; a real tenant is never staged.

use std::collections::HashSet;

use uuid::Uuid;

use super::RunningEmulator;
use super::model::{Principal, Risk, roles};

/// A user picked for an inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// Object id.
    pub id: String,
    /// User principal name.
    pub upn: String,
    /// Display names of the critical roles the user holds actively (empty for others).
    pub roles: Vec<String>,
}

/// Which kind of user an inject needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An enabled cloud user holding a critical directory role by a direct, active
    /// assignment (not a break-glass account: playbooks exclude those by name).
    ActiveAdmin,
    /// An enabled, on-premises synced user holding no role.
    Synced,
}

impl RunningEmulator {
    /// The first user (in directory order) of `kind` whose UPN and id `taken` does not
    /// hold (lower case: users already among the targets), if the tenant has one.
    pub fn pick(&self, kind: Kind, taken: &HashSet<String>) -> Option<Picked> {
        let t = self.state.read();
        (0..t.users.len() as u32).find_map(|i| {
            let u = &t.users[i as usize];
            let upn = t.upn(i);
            if !u.enabled
                || u.service
                || upn.starts_with("bg-")
                || taken.contains(&upn.to_lowercase())
                || taken.contains(&u.id.to_string())
            {
                return None;
            }
            let active = t.active_roles(i);
            let direct = t
                .assignments
                .iter()
                .any(|a| a.principal == Principal::User(i) && roles::CRITICAL.contains(&a.role));
            let fits = match kind {
                Kind::ActiveAdmin => !u.synced && direct,
                Kind::Synced => u.synced && active.is_empty(),
            };
            fits.then(|| Picked {
                id: u.id.to_string(),
                upn,
                roles: active
                    .into_iter()
                    .map(|r| super::tenant_file::role_name(r).to_owned())
                    .collect(),
            })
        })
    }

    /// Make `user` a direct member of group `group` (as `POST /groups/{id}/members/$ref`
    /// would); false when either does not exist.
    pub fn stage_member(&self, group: Uuid, user: &str) -> bool {
        let mut t = self.state.write();
        let Some(idx) = t.find_user(user) else {
            return false;
        };
        let Some(g) = t.groups.iter_mut().find(|g| g.id == group) else {
            return false;
        };
        if !g.members.contains(&idx) {
            g.members.push(idx);
        }
        true
    }

    /// Flag `user` at risk `level` (`low`, `medium`, `high`) in Identity Protection; false
    /// when the user or the level does not exist.
    pub fn stage_risk(&self, user: &str, level: &str) -> bool {
        let level: &'static str = match level {
            "low" => "low",
            "medium" => "medium",
            "high" => "high",
            _ => return false,
        };
        let mut t = self.state.write();
        let Some(idx) = t.find_user(user) else {
            return false;
        };
        let updated_ms = jiff::Timestamp::now().as_millisecond();
        t.risky.insert(
            idx,
            Risk {
                level,
                state: "atRisk",
                detail: "none",
                updated_ms,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::EmulatorConfig;

    #[tokio::test]
    async fn picks_are_of_their_kind_and_staging_lands() {
        let emu =
            RunningEmulator::start(EmulatorConfig::seeded(500, 3), ([127, 0, 0, 1], 0).into())
                .await
                .unwrap();
        let none = HashSet::new();
        let admin = emu.pick(Kind::ActiveAdmin, &none).unwrap();
        assert!(!admin.roles.is_empty(), "{admin:?}");
        let synced = emu.pick(Kind::Synced, &none).unwrap();
        assert!(synced.roles.is_empty());
        let taken = HashSet::from([synced.upn.to_lowercase()]);
        let other = emu.pick(Kind::Synced, &taken).unwrap();
        assert_ne!(
            other.upn, synced.upn,
            "a user already taken is not picked again"
        );
        {
            let t = emu.state.read();
            let i = t.find_user(&synced.upn).unwrap();
            assert!(t.users[i as usize].synced);
            let i = t.find_user(&admin.id).unwrap();
            assert!(!t.users[i as usize].synced && t.users[i as usize].enabled);
        }
        let group = emu.state.read().groups[0].id;
        assert!(emu.stage_member(group, &admin.upn));
        assert!(emu.stage_member(group, &admin.upn), "idempotent");
        assert!(!emu.stage_member(Uuid::nil(), &admin.upn));
        assert!(emu.stage_risk(&synced.upn, "high"));
        assert!(!emu.stage_risk(&synced.upn, "severe"));
        {
            let t = emu.state.read();
            let idx = t.find_user(&admin.upn).unwrap();
            assert_eq!(t.groups[0].members.iter().filter(|&&m| m == idx).count(), 1);
            let idx = t.find_user(&synced.upn).unwrap();
            assert_eq!(t.risky[&idx].level, "high");
        }
        emu.shutdown().await;
    }
}
