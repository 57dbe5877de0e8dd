//! Deleting a run's Job and Secrets (SPEC §5 step 12): background propagation, 404 counts as done,
//! short retries on transient errors, and a `Drop` backstop for futures dropped mid-run. Never
//! decides *whether* to delete (retainJobs, SIGTERM): the caller does.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};

/// First pause before retrying a failed delete or patch: long enough for an apiserver hiccup.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
/// Longest pause between retries, so a run's cleanup ends within seconds.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);
/// Retries after the first attempt: four tries in all, about 3 s at worst.
const RETRY_TIMES: usize = 3;

/// How long a run's cleanup may take, retries included. The client has no read timeout (log
/// streams stay silent for minutes), so callers wrap [`CleanupGuard::cleanup`] in
/// `tokio::time::timeout(CLEANUP_TIMEOUT, ..)`; the `Drop` backstop does the same. Past it, the
/// Job's TTL and the Secrets' ownerReference finish the job.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The backoff of every short retry in `cluster/` (deletes here, the ownerReference patch in launch).
pub(crate) fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY)
        .with_max_times(RETRY_TIMES)
        .with_jitter()
}

/// Errors worth another try: the apiserver was busy or unreachable, not a refusal.
pub(crate) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

/// Deletes Job `name` with background propagation (its pods and owned Secrets follow). A Job that
/// is already gone counts as deleted.
///
/// # Errors
/// The last kube error once retries on transient errors are spent, or the first other error.
pub async fn delete_job(jobs: &Api<Job>, name: &str) -> Result<(), kube::Error> {
    let delete = || async {
        match jobs.delete(name, &DeleteParams::background()).await {
            Err(err) if !is_not_found(&err) => Err(err),
            _ => Ok(()),
        }
    };
    delete.retry(retry_policy()).when(is_transient).await
}

/// Deletes the named Secrets; ones already gone count as deleted. Tries every name even after a
/// failure.
///
/// # Errors
/// The first Secret's error that survived the retries.
pub async fn delete_secrets(secrets: &Api<Secret>, names: &[String]) -> Result<(), kube::Error> {
    let mut first_err = None;
    for name in names {
        let delete = || async {
            match secrets.delete(name, &DeleteParams::default()).await {
                Err(err) if !is_not_found(&err) => Err(err),
                _ => Ok(()),
            }
        };
        if let Err(err) = delete.retry(retry_policy()).when(is_transient).await {
            first_err.get_or_insert(err);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Deletes a run's Job and Secrets if dropped while armed: the backstop for a run future dropped
/// mid-way (STYLE habit 9). Call [`CleanupGuard::cleanup`] for the normal, awaited cleanup, or
/// [`CleanupGuard::disarm`] to leave everything in place (retainJobs, SIGTERM).
#[derive(Debug)]
#[must_use = "dropping the guard deletes the Job and Secrets at once"]
pub struct CleanupGuard {
    jobs: Api<Job>,
    secrets: Api<Secret>,
    job: Option<String>,
    secret_names: Vec<String>,
    armed: bool,
}

impl CleanupGuard {
    /// An armed guard over Job `job` (if created yet) and the named Secrets.
    pub fn new(
        jobs: Api<Job>,
        secrets: Api<Secret>,
        job: Option<String>,
        secret_names: Vec<String>,
    ) -> Self {
        Self {
            jobs,
            secrets,
            job,
            secret_names,
            armed: true,
        }
    }

    /// Leave the Job and Secrets alone when dropped.
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Also delete Job `name` (once it exists: never a same-named Job someone else created).
    pub(crate) fn track_job(&mut self, name: String) {
        self.job = Some(name);
    }

    /// Also delete Secret `name` (once this run created it).
    pub(crate) fn track_secret(&mut self, name: String) {
        self.secret_names.push(name);
    }

    /// Deletes the Job, then the Secrets (the ownerReference usually got there first), and
    /// disarms.
    ///
    /// # Errors
    /// The first delete that failed; the other deletes are still attempted.
    pub async fn cleanup(&mut self) -> Result<(), kube::Error> {
        self.disarm();
        delete_all(
            &self.jobs,
            &self.secrets,
            self.job.as_deref(),
            &self.secret_names,
        )
        .await
    }
}

async fn delete_all(
    jobs: &Api<Job>,
    secrets: &Api<Secret>,
    job: Option<&str>,
    secret_names: &[String],
) -> Result<(), kube::Error> {
    let delete_the_job = async {
        match job {
            Some(name) => delete_job(jobs, name).await,
            None => Ok(()),
        }
    };
    // Both at once: the run resolves one round trip sooner.
    let (job_result, secrets_result) =
        tokio::join!(delete_the_job, delete_secrets(secrets, secret_names));
    job_result.and(secrets_result)
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                job = ?self.job,
                "no tokio runtime to delete the Job and Secrets on; the Job's TTL will"
            );
            return;
        };
        let (jobs, secrets) = (self.jobs.clone(), self.secrets.clone());
        let job = self.job.take();
        let secret_names = std::mem::take(&mut self.secret_names);
        runtime.spawn(async move {
            let deleted = delete_all(&jobs, &secrets, job.as_deref(), &secret_names);
            match tokio::time::timeout(CLEANUP_TIMEOUT, deleted).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    let error = crate::error::chain(&err);
                    tracing::warn!(?job, %error, "backstop cleanup failed");
                }
                Err(_) => tracing::warn!(?job, "backstop cleanup timed out"),
            }
        });
    }
}

#[cfg(test)]
pub(crate) mod mock {
    //! An in-process apiserver for error-path tests (controller-rs `ApiServerVerifier` style):
    //! each `expect` answers exactly one request and asserts its method and URI.

    use http::{Request, Response};
    use kube::client::Body;
    use kube::Client;
    use serde_json::{json, Value};

    /// The server side of a mocked [`Client`].
    pub struct ApiServerVerifier(pub tower_test::mock::Handle<Request<Body>, Response<Body>>);

    /// A client whose requests reach the returned verifier.
    pub fn client() -> (Client, ApiServerVerifier) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "ns"), ApiServerVerifier(handle))
    }

    /// A `Status` failure body as the apiserver sends it.
    pub fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("mock {reason}"), "reason": reason, "code": code})
    }

    impl ApiServerVerifier {
        /// Waits for the next request, asserts `method` and `uri` (path and query), answers
        /// `code` with `body`, and returns the request body as JSON (`Null` when empty).
        pub async fn expect(&mut self, method: &str, uri: &str, code: u16, body: Value) -> Value {
            let (request, send) = self.0.next_request().await.expect("a request");
            assert_eq!(
                request.method().as_str(),
                method,
                "method of {}",
                request.uri()
            );
            assert_eq!(request.uri().to_string(), uri);
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let response = Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            send.send_response(response);
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        }

        /// Takes the next request and never answers it.
        pub async fn hang(&mut self) {
            let (_request, send) = self.0.next_request().await.expect("a request");
            std::mem::forget(send);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mock::{client, status};
    use super::*;
    use serde_json::json;

    const JOB_URI: &str = "/apis/batch/v1/namespaces/ns/jobs/j?";

    #[tokio::test]
    async fn delete_job_counts_not_found_as_deleted_and_propagates_in_background() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            let body = server
                .expect("DELETE", JOB_URI, 404, status(404, "NotFound"))
                .await;
            assert_eq!(body["propagationPolicy"], "Background");
        });
        delete_job(&jobs, "j").await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn delete_job_retries_transient_errors_then_succeeds() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            server
                .expect("DELETE", JOB_URI, 503, status(503, "ServiceUnavailable"))
                .await;
            let ok =
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
            server.expect("DELETE", JOB_URI, 200, ok).await;
        });
        delete_job(&jobs, "j").await.unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn delete_job_gives_up_at_once_on_a_refusal() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            server
                .expect("DELETE", JOB_URI, 403, status(403, "Forbidden"))
                .await;
        });
        let err = delete_job(&jobs, "j").await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn delete_secrets_tries_every_name_and_reports_the_first_failure() {
        let (client, mut server) = client();
        let secrets: Api<Secret> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            let uri = |n: &str| format!("/api/v1/namespaces/ns/secrets/{n}?");
            server
                .expect("DELETE", &uri("j-0"), 403, status(403, "Forbidden"))
                .await;
            server
                .expect("DELETE", &uri("j-1"), 404, status(404, "NotFound"))
                .await;
        });
        let err = delete_secrets(&secrets, &["j-0".into(), "j-1".into()])
            .await
            .unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn dropped_armed_guard_deletes_job_and_secrets() {
        let (client, mut server) = client();
        let guard = CleanupGuard::new(
            Api::namespaced(client.clone(), "ns"),
            Api::namespaced(client, "ns"),
            Some("j".into()),
            vec!["j-0".into()],
        );
        drop(guard);
        server
            .expect("DELETE", JOB_URI, 404, status(404, "NotFound"))
            .await;
        let secret_uri = "/api/v1/namespaces/ns/secrets/j-0?";
        server
            .expect("DELETE", secret_uri, 404, status(404, "NotFound"))
            .await;
    }

    #[tokio::test]
    async fn disarmed_guard_deletes_nothing() {
        let (client, mut server) = client();
        let mut guard = CleanupGuard::new(
            Api::namespaced(client.clone(), "ns"),
            Api::namespaced(client, "ns"),
            Some("j".into()),
            vec!["j-0".into()],
        );
        guard.disarm();
        drop(guard);
        // With every client gone and no spawned delete holding one, the mock sees no request.
        assert!(server.0.next_request().await.is_none());
    }
}
