//! Creating a run's Secrets and Job (SPEC §5 step 7) so that nothing leaks: Secrets first, the
//! Job next, then each Secret gets an ownerReference to the Job. Any step that fails undoes the
//! earlier ones before returning.

use std::time::Duration;

use backon::Retryable;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::cleanup::{self, CleanupGuard};
use crate::error::ErrorCode;
use crate::plan::manifest::owner_reference;

/// How long the whole launch may take: a handful of small requests that a healthy apiserver
/// answers in milliseconds, plus the patch retries. The client has no read timeout (log streams
/// stay silent for minutes), so a hung request would otherwise hang the run; when the caller's
/// `tokio::time::timeout(LAUNCH_TIMEOUT, launch(..))` drops the launch, its [`CleanupGuard`]
/// deletes whatever was created.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A launch step that failed; whatever it had created is deleted again (best effort).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A prompt Secret could not be created.
    #[error("cannot create Secret {name}")]
    CreateSecret {
        /// The Secret's name.
        name: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
    /// The Job could not be created.
    #[error("cannot create Job {name}")]
    CreateJob {
        /// The Job's name.
        name: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
    /// A Secret could not be made a dependent of the Job. Without the ownerReference it would
    /// outlive the Job if the adapter died, so the run is not started.
    #[error("cannot set the ownerReference of Secret {name} to its Job")]
    AdoptSecret {
        /// The Secret's name.
        name: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The SPEC error code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::CreateSecret { .. } | Self::AdoptSecret { .. } => {
                ErrorCode::PromptSecretCreateFailed
            }
            Self::CreateJob { .. } => ErrorCode::JobCreateFailed,
        }
    }
}

/// Creates `secrets_to_create`, then `job`, then patches each Secret with an ownerReference to the
/// created Job (retrying transient errors), and returns the Job as the apiserver stored it.
///
/// On failure everything created so far is deleted before returning: the Secrets when the Job
/// cannot be created, the Job and the Secrets when a Secret cannot be adopted (a Secret without
/// owner would leak if the adapter died later). If this future is dropped half-way, a
/// [`CleanupGuard`] deletes the same things.
///
/// # Errors
/// [`Error`] naming the failed step and object.
pub async fn launch(
    secrets: &Api<Secret>,
    jobs: &Api<Job>,
    job: Job,
    secrets_to_create: Vec<Secret>,
) -> Result<Job, Error> {
    let names: Vec<String> = secrets_to_create
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect();
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let post = PostParams::default();

    let mut guard = CleanupGuard::new(jobs.clone(), secrets.clone(), None, Vec::new());
    for (secret, name) in secrets_to_create.iter().zip(&names) {
        if let Err(source) = secrets.create(&post, secret).await {
            let name = name.clone();
            undo(&mut guard).await;
            return Err(Error::CreateSecret { name, source });
        }
        guard.track_secret(name.clone());
    }

    let created = match jobs.create(&post, &job).await {
        Ok(created) => created,
        Err(source) => {
            undo(&mut guard).await;
            return Err(Error::CreateJob {
                name: job_name,
                source,
            });
        }
    };
    guard.track_job(job_name);

    let owner = owner_reference(&created);
    let patch = Patch::Merge(json!({"metadata": {"ownerReferences": [owner]}}));
    let params = PatchParams::default();
    for name in &names {
        let adopt = || secrets.patch(name, &params, &patch);
        let adopted = adopt
            .retry(cleanup::retry_policy())
            .when(cleanup::is_transient)
            .await;
        if let Err(source) = adopted {
            undo(&mut guard).await;
            return Err(Error::AdoptSecret {
                name: name.clone(),
                source,
            });
        }
    }
    guard.disarm();
    Ok(created)
}

/// Undoes a failed launch; a failure to undo is only logged, the launch error matters more.
async fn undo(guard: &mut CleanupGuard) {
    if let Err(err) = guard.cleanup().await {
        let error = crate::error::chain(&err);
        tracing::warn!(%error, "cannot delete what a failed launch created");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cleanup::mock::{client, status, ApiServerVerifier};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::Value;

    const SECRETS: &str = "/api/v1/namespaces/ns/secrets?";
    const JOBS: &str = "/apis/batch/v1/namespaces/ns/jobs?";

    fn secret_uri(name: &str) -> String {
        format!("/api/v1/namespaces/ns/secrets/{name}?")
    }

    fn named<K: Default + kube::Resource>(name: &str) -> K {
        let mut object = K::default();
        *object.meta_mut() = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        };
        object
    }

    /// Runs `launch` of Job `j` with Secrets `j-0` and `j-1` against `scenario`.
    async fn launch_against<F, Fut>(scenario: F) -> Result<Job, Error>
    where
        F: FnOnce(ApiServerVerifier) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (client, server) = client();
        let server = tokio::spawn(scenario(server));
        let result = launch(
            &Api::namespaced(client.clone(), "ns"),
            &Api::namespaced(client, "ns"),
            named("j"),
            vec![named("j-0"), named("j-1")],
        )
        .await;
        server.await.unwrap();
        result
    }

    fn created(name: &str) -> Value {
        serde_json::json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")}})
    }

    async fn expect_secrets_created(server: &mut ApiServerVerifier) {
        for name in ["j-0", "j-1"] {
            let body = server.expect("POST", SECRETS, 201, created(name)).await;
            assert_eq!(body["metadata"]["name"], name);
        }
    }

    #[tokio::test]
    async fn creates_secrets_then_job_then_makes_the_job_own_each_secret() {
        let job = launch_against(|mut server| async move {
            expect_secrets_created(&mut server).await;
            server.expect("POST", JOBS, 201, created("j")).await;
            for name in ["j-0", "j-1"] {
                let patch = server
                    .expect("PATCH", &secret_uri(name), 200, created(name))
                    .await;
                let owner = &patch["metadata"]["ownerReferences"][0];
                assert_eq!(owner["uid"], "uid-j");
                assert_eq!(owner["kind"], "Job");
                assert_eq!(owner["blockOwnerDeletion"], true);
            }
        })
        .await
        .unwrap();
        assert_eq!(job.metadata.uid.as_deref(), Some("uid-j"));
    }

    #[tokio::test]
    async fn job_create_conflict_deletes_the_secrets_first() {
        let err = launch_against(|mut server| async move {
            expect_secrets_created(&mut server).await;
            server
                .expect("POST", JOBS, 409, status(409, "AlreadyExists"))
                .await;
            for name in ["j-0", "j-1"] {
                server
                    .expect("DELETE", &secret_uri(name), 200, created(name))
                    .await;
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(&err, Error::CreateJob { name, .. } if name == "j"));
        assert_eq!(err.code(), ErrorCode::JobCreateFailed);
        assert!(crate::error::chain(&err).starts_with("cannot create Job j: "));
    }

    #[tokio::test]
    async fn secret_create_failure_deletes_only_the_secrets_created_before() {
        let err = launch_against(|mut server| async move {
            server.expect("POST", SECRETS, 201, created("j-0")).await;
            server
                .expect("POST", SECRETS, 403, status(403, "Forbidden"))
                .await;
            server
                .expect("DELETE", &secret_uri("j-0"), 200, created("j-0"))
                .await;
        })
        .await
        .unwrap_err();
        assert!(matches!(&err, Error::CreateSecret { name, .. } if name == "j-1"));
        assert_eq!(err.code(), ErrorCode::PromptSecretCreateFailed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_launch_dropped_by_its_timeout_deletes_the_secrets_it_created() {
        let (client, mut server) = client();
        let (secrets, jobs) = (
            Api::namespaced(client.clone(), "ns"),
            Api::namespaced(client, "ns"),
        );
        let dropped = tokio::time::timeout(
            LAUNCH_TIMEOUT,
            launch(
                &secrets,
                &jobs,
                named("j"),
                vec![named("j-0"), named("j-1")],
            ),
        );
        let server = async move {
            expect_secrets_created(&mut server).await;
            server.hang().await;
            // No Job was created, so the backstop deletes no Job (its name may be another's).
            for name in ["j-0", "j-1"] {
                server
                    .expect("DELETE", &secret_uri(name), 200, created(name))
                    .await;
            }
        };
        let (result, ()) = tokio::join!(dropped, server);
        assert!(
            result.is_err(),
            "the launch hung on the Job create and was dropped"
        );
    }

    #[tokio::test]
    async fn adopt_failure_deletes_the_job_and_the_secrets() {
        let err = launch_against(|mut server| async move {
            expect_secrets_created(&mut server).await;
            server.expect("POST", JOBS, 201, created("j")).await;
            let forbidden = status(403, "Forbidden");
            server
                .expect("PATCH", &secret_uri("j-0"), 403, forbidden)
                .await;
            let job = "/apis/batch/v1/namespaces/ns/jobs/j?";
            let body = server.expect("DELETE", job, 200, created("j")).await;
            assert_eq!(body["propagationPolicy"], "Background");
            for name in ["j-0", "j-1"] {
                server
                    .expect("DELETE", &secret_uri(name), 404, status(404, "NotFound"))
                    .await;
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(&err, Error::AdoptSecret { name, .. } if name == "j-0"));
        assert_eq!(err.code(), ErrorCode::PromptSecretCreateFailed);
    }
}
