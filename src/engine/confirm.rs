//! `confirm_compromised` for many users at once.
//!
//! Identity Protection allows one request per second per tenant
//! (<https://learn.microsoft.com/graph/throttling-limits>), but
//! `POST /identityProtection/riskyUsers/confirmCompromised` takes a list of user ids
//! (<https://learn.microsoft.com/graph/api/riskyuser-confirmcompromised>). Each user's
//! pipeline hands its id to one [`Confirmer`] task, which sends whatever has queued up as one
//! request and answers every waiting pipeline with its result: 10,000 users take a few
//! hundred requests instead of 10,000 seconds.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::directory::{Directory, DirectoryError, DirectoryErrorKind};

/// User ids sent in one request. Graph documents no maximum for `userIds`; this keeps a
/// request small enough that one failure does not cover half a run.
pub const MAX_USERS_PER_REQUEST: usize = 50;

type Waiter = (String, oneshot::Sender<Result<(), DirectoryError>>);

/// A handle to the task that batches confirmations. Dropping every handle ends the task.
#[derive(Debug, Clone)]
pub struct Confirmer {
    queue: mpsc::Sender<Waiter>,
}

impl Confirmer {
    /// Start the batching task on the current runtime.
    pub fn spawn(directory: Arc<dyn Directory>) -> Confirmer {
        let (queue, mut waiting) = mpsc::channel::<Waiter>(4 * MAX_USERS_PER_REQUEST);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_USERS_PER_REQUEST {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
                let result = directory.confirm_compromised(&ids).await;
                for (_, reply) in batch {
                    let _ = reply.send(result.clone());
                }
            }
        });
        Confirmer { queue }
    }

    /// Confirm one user compromised; resolves when the request carrying it has an answer.
    pub async fn confirm(&self, user_id: &str) -> Result<(), DirectoryError> {
        let (reply, answer) = oneshot::channel();
        let gone =
            || DirectoryError::new(DirectoryErrorKind::Unavailable, "confirmation task stopped");
        self.queue
            .send((user_id.to_owned(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::*;
    use crate::directory::*;

    /// A directory that only knows `confirm_compromised`, slowly, like a paced bucket.
    #[derive(Default)]
    struct Slow {
        calls: Mutex<Vec<Vec<String>>>,
    }

    fn never<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, DirectoryError>> {
        unreachable!("not used by the confirmer")
    }

    impl Directory for Slow {
        fn list_users(&self, _: UserQuery) -> ItemStream<'_, User> {
            unreachable!()
        }
        fn list_users_with_manager(&self, _: UserQuery) -> ItemStream<'_, (User, Option<String>)> {
            unreachable!()
        }
        fn registration_details(
            &self,
            _: Option<Vec<String>>,
        ) -> ItemStream<'_, crate::directory::Registration> {
            unreachable!()
        }
        fn count_users(&self) -> DirFuture<'_, u64> {
            never()
        }
        fn access(&self) -> DirFuture<'_, Vec<AppAccess>> {
            never()
        }
        fn is_group_member<'a>(&'a self, _: &'a str, _: &'a str) -> DirFuture<'a, bool> {
            never()
        }
        fn list_group_members(&self, _: &str, _: bool) -> ItemStream<'_, User> {
            unreachable!()
        }
        fn get_user<'a>(&'a self, _: &'a str) -> DirFuture<'a, Option<User>> {
            never()
        }
        fn get_group<'a>(&'a self, _: &'a str) -> DirFuture<'a, Option<crate::directory::Group>> {
            never()
        }
        fn get_manager<'a>(&'a self, _: &'a str) -> DirFuture<'a, Option<Manager>> {
            never()
        }
        fn list_role_assignments(&self, _: Option<String>) -> ItemStream<'_, RoleAssignment> {
            unreachable!()
        }
        fn list_role_eligibilities(&self, _: Option<String>) -> ItemStream<'_, RoleEligibility> {
            unreachable!()
        }
        fn list_risky_users(&self, _: Vec<RiskLevel>) -> ItemStream<'_, RiskyUser> {
            unreachable!()
        }
        fn force_password_change<'a>(
            &'a self,
            _: &'a str,
            _: &'a PasswordChange,
        ) -> DirFuture<'a, ()> {
            never()
        }
        fn revoke_sessions<'a>(&'a self, _: &'a str) -> DirFuture<'a, ()> {
            never()
        }
        fn list_auth_methods<'a>(&'a self, _: &'a str) -> DirFuture<'a, Vec<AuthMethod>> {
            never()
        }
        fn delete_auth_method<'a>(&'a self, _: &'a str, _: &'a AuthMethod) -> DirFuture<'a, ()> {
            never()
        }
        fn create_tap<'a>(
            &'a self,
            _: &'a str,
            _: &'a TapRequest,
        ) -> DirFuture<'a, TemporaryAccessPass> {
            never()
        }
        fn add_group_member<'a>(&'a self, _: &'a str, _: &'a str) -> DirFuture<'a, ()> {
            never()
        }
        fn remove_group_member<'a>(&'a self, _: &'a str, _: &'a str) -> DirFuture<'a, ()> {
            never()
        }
        fn confirm_compromised<'a>(&'a self, user_ids: &'a [String]) -> DirFuture<'a, ()> {
            Box::pin(async move {
                self.calls.lock().unwrap().push(user_ids.to_vec());
                tokio::time::sleep(Duration::from_secs(1)).await; // one request per second
                Ok(())
            })
        }
        fn send_mail<'a>(&'a self, _: &'a str, _: &'a Mail) -> DirFuture<'a, ()> {
            never()
        }
        fn send_mime<'a>(&'a self, _: &'a str, _: &'a [u8]) -> DirFuture<'a, ()> {
            never()
        }
        fn batch_writes(
            &self,
            _: Vec<UserWrite>,
        ) -> DirFuture<'_, Vec<Result<(), DirectoryError>>> {
            never()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn many_users_share_few_requests_and_each_is_confirmed_once() {
        let directory = Arc::new(Slow::default());
        let confirmer = Confirmer::spawn(directory.clone());
        let tasks: Vec<_> = (0..120)
            .map(|i| {
                let confirmer = confirmer.clone();
                tokio::spawn(async move { confirmer.confirm(&format!("u{i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let calls = directory.calls.lock().unwrap();
        assert!(calls.len() <= 4, "{} requests for 120 users", calls.len());
        assert!(calls.iter().all(|c| c.len() <= MAX_USERS_PER_REQUEST));
        let mut ids: Vec<&String> = calls.iter().flatten().collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 120);
        assert_eq!(
            calls.iter().map(Vec::len).sum::<usize>(),
            120,
            "nobody confirmed twice"
        );
    }
}
