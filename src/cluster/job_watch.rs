//! Watches one Job until it ends (Complete, Failed, or gone) and reads how the container exited.
//! Reads only: it never deletes or patches anything, and it does not time out by itself.

use std::pin::pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;

/// How long the Job watch may stay silent before one GET checks the Job. A running Job's status
/// does not change, so the watch is normally silent for the whole run: the GET only bounds how late
/// a watch that silently stopped delivering is noticed. Each further silent stretch doubles, up to
/// [`JOB_POLL_BACKSTOP_MAX`], so a long run costs few requests.
pub const JOB_POLL_BACKSTOP: Duration = Duration::from_secs(60);
/// The longest silent stretch between two backstop GETs.
pub const JOB_POLL_BACKSTOP_MAX: Duration = Duration::from_secs(10 * 60);
/// First pause before reading the container's exit again: the Job's condition can come before the
/// pod's status shows the container terminated.
const EXIT_RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two reads of the container's exit.
const EXIT_RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// Reads of the container's exit after the first (about 5 s in all with the delays above).
const EXIT_RETRY_TIMES: usize = 8;

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// The `Complete` condition is true.
    Complete,
    /// The `Failed` condition is true.
    Failed {
        /// `DeadlineExceeded`, `BackoffLimitExceeded`, ...
        reason: Option<String>,
        /// The controller's explanation.
        message: Option<String>,
    },
    /// The Job was deleted (or is being deleted) before it ended.
    Vanished {
        /// What showed it.
        detected_how: Detection,
        /// When it was noticed (or when the deletion began, if the Job says).
        at: Timestamp,
    },
}

impl JobEnd {
    /// Whether the Job hit its `activeDeadlineSeconds`: the run timed out.
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Self::Failed { reason: Some(reason), .. } if reason == "DeadlineExceeded")
    }
}

/// What showed that a Job was gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// The watch delivered a delete event.
    DeleteEvent,
    /// The Job was missing from the list that (re)started the watch.
    MissingOnRelist,
    /// The backstop GET answered 404.
    MissingOnPoll,
    /// The Job carries a deletion timestamp (foreground deletion or a finalizer holds it).
    BeingDeleted,
}

impl std::fmt::Display for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::DeleteEvent => "the Job watch reported it deleted",
            Self::MissingOnRelist => "the Job was missing when its watch (re)listed",
            Self::MissingOnPoll => "the Job was not found by the backstop poll",
            Self::BeingDeleted => "the Job is being deleted",
        })
    }
}

/// The Job's end, if it has ended: a true `Complete` or `Failed` condition, else a deletion
/// timestamp. Interim conditions of newer clusters (`SuccessCriteriaMet`, `FailureTarget`) are not
/// ends: the final condition follows them.
pub fn job_end(job: &Job) -> Option<JobEnd> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    for condition in conditions
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
    {
        match condition.type_.as_str() {
            "Complete" => return Some(JobEnd::Complete),
            "Failed" => {
                return Some(JobEnd::Failed {
                    reason: condition.reason.clone(),
                    message: condition.message.clone(),
                })
            }
            _ => {}
        }
    }
    let deletion = job.metadata.deletion_timestamp.as_ref()?;
    Some(JobEnd::Vanished {
        detected_how: Detection::BeingDeleted,
        at: deletion.0,
    })
}

/// Waits for Job `name` to end. A watch with a field selector on the name, restarted with backoff
/// on errors and from a fresh list on `410 Gone`; a GET after [`JOB_POLL_BACKSTOP`] of silence
/// (then after growing silences).
/// Never fails: API errors are logged and retried, so compose a deadline from outside
/// (`tokio::time::timeout` or a `select!` branch).
pub async fn await_job_end(jobs: Api<Job>, name: String) -> JobEnd {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = pin!(watcher(jobs.clone(), config).default_backoff());
    let mut listed = false;
    let mut backstop = ExponentialBuilder::new()
        .with_min_delay(JOB_POLL_BACKSTOP)
        .with_max_delay(JOB_POLL_BACKSTOP_MAX)
        .without_max_times()
        .build();
    let mut silence = backstop.next().unwrap_or(JOB_POLL_BACKSTOP_MAX);
    loop {
        match tokio::time::timeout(silence, events.next()).await {
            Ok(Some(Ok(event))) => match event {
                Event::Init => listed = false,
                Event::InitApply(job) | Event::Apply(job) => {
                    listed = true;
                    if let Some(end) = job_end(&job) {
                        return end;
                    }
                }
                Event::InitDone if !listed => return vanished(Detection::MissingOnRelist),
                Event::InitDone => {}
                Event::Delete(_) => return vanished(Detection::DeleteEvent),
            },
            Ok(Some(Err(err))) => {
                tracing::warn!(job = %name, error = %err, "watching the Job failed; retrying")
            }
            ended @ (Ok(None) | Err(_)) => {
                if ended.is_ok() {
                    // The watcher never ends; if it ever did, poll at the backstop's pace only.
                    tokio::time::sleep(silence).await;
                }
                silence = backstop.next().unwrap_or(JOB_POLL_BACKSTOP_MAX);
                match jobs.get_opt(&name).await {
                    Ok(None) => return vanished(Detection::MissingOnPoll),
                    Ok(Some(job)) => {
                        if let Some(end) = job_end(&job) {
                            return end;
                        }
                    }
                    Err(err) => tracing::warn!(job = %name, error = %err, "reading the Job failed"),
                }
            }
        }
    }
}

fn vanished(detected_how: Detection) -> JobEnd {
    JobEnd::Vanished {
        detected_how,
        at: Timestamp::now(),
    }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// The process's exit code (137 = SIGKILL, e.g. OOMKilled; 143 = SIGTERM).
    pub exit_code: i32,
    /// The signal that killed it, when the runtime reports one.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, ...
    pub reason: Option<String>,
    /// The runtime's message, if any.
    pub message: Option<String>,
}

/// The terminated state of `container` in `pod`, if it has terminated.
pub fn container_exit(pod: &Pod, container: &str) -> Option<ContainerExit> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let terminated = statuses
        .iter()
        .find(|s| s.name == container)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    Some(ContainerExit {
        exit_code: terminated.exit_code,
        signal: terminated.signal,
        reason: terminated.reason.clone(),
        message: terminated.message.clone(),
    })
}

/// Reading a container's exit failed.
#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    /// The pod's status still showed the container not terminated after the retries.
    #[error("container {container} of pod {pod} has not terminated")]
    NotTerminated {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// The pod does not exist (any more).
    #[error("pod {pod} not found")]
    PodNotFound {
        /// The pod.
        pod: String,
    },
    /// The apiserver failed the read.
    #[error("reading pod {pod} failed")]
    Read {
        /// The pod.
        pod: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },
}

/// Reads how `container` of `pod` exited, retrying for a few seconds while the status does not show
/// it terminated yet (or the read fails): the Job's condition can come first.
///
/// # Errors
/// [`ExitError::PodNotFound`] at once; [`ExitError::NotTerminated`] or [`ExitError::Read`] when
/// the retries run out.
pub async fn read_exit(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
) -> Result<ContainerExit, ExitError> {
    let read = || async {
        match pods.get_opt(pod).await {
            Ok(Some(found)) => {
                container_exit(&found, container).ok_or_else(|| ExitError::NotTerminated {
                    pod: pod.to_owned(),
                    container: container.to_owned(),
                })
            }
            Ok(None) => Err(ExitError::PodNotFound {
                pod: pod.to_owned(),
            }),
            Err(source) => Err(ExitError::Read {
                pod: pod.to_owned(),
                source,
            }),
        }
    };
    let backoff = ExponentialBuilder::new()
        .with_min_delay(EXIT_RETRY_MIN_DELAY)
        .with_max_delay(EXIT_RETRY_MAX_DELAY)
        .with_max_times(EXIT_RETRY_TIMES);
    read.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|err| !matches!(err, ExitError::PodNotFound { .. }))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::pod_wait::tests::fixture;
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": status})).unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": format!("{type_} because {reason}")})
    }

    #[test]
    fn a_running_job_has_not_ended() {
        assert_eq!(job_end(&job(json!({"active": 1}))), None);
    }

    #[test]
    fn complete_ends_the_job() {
        let complete = job(json!({"conditions": [condition("Complete", "True", "")]}));
        assert_eq!(job_end(&complete), Some(JobEnd::Complete));
    }

    #[test]
    fn failed_carries_reason_and_message() {
        let failed = job(json!({"conditions": [condition("Failed", "True", "DeadlineExceeded")]}));
        let end = job_end(&failed).unwrap();
        assert!(end.is_deadline_exceeded());
        assert_eq!(
            end,
            JobEnd::Failed {
                reason: Some("DeadlineExceeded".into()),
                message: Some("Failed because DeadlineExceeded".into())
            }
        );
        let backoff =
            job(json!({"conditions": [condition("Failed", "True", "BackoffLimitExceeded")]}));
        assert!(!job_end(&backoff).unwrap().is_deadline_exceeded());
    }

    #[test]
    fn interim_conditions_of_newer_clusters_are_not_ends() {
        let interim = job(json!({"conditions": [
            condition("FailureTarget", "True", "PodFailurePolicy"),
            condition("SuccessCriteriaMet", "True", "SuccessPolicy"),
        ]}));
        assert_eq!(job_end(&interim), None);
    }

    #[test]
    fn false_conditions_are_not_ends() {
        assert_eq!(
            job_end(&job(
                json!({"conditions": [condition("Failed", "False", "x")]})
            )),
            None
        );
    }

    #[test]
    fn a_job_being_deleted_has_vanished_since_its_deletion_timestamp() {
        let mut deleting = job(json!({"active": 1}));
        let at: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
        assert_eq!(
            job_end(&deleting),
            Some(JobEnd::Vanished {
                detected_how: Detection::BeingDeleted,
                at
            })
        );
    }

    #[test]
    fn container_exit_reads_the_terminated_state() {
        let exit = container_exit(&fixture("exited-1"), "claude").unwrap();
        assert_eq!((exit.exit_code, exit.reason.as_deref()), (1, Some("Error")));
        assert_eq!(container_exit(&fixture("running"), "claude"), None);
        assert_eq!(container_exit(&fixture("exited-1"), "other"), None);
    }

    /// The apiserver lists the Job running, then its watch stays silent (a connection that stopped
    /// delivering); the backstop GET finds the Job gone.
    #[tokio::test]
    async fn radio_silence_is_ended_by_the_backstop_poll() {
        use http::{Request, Response};
        use kube::client::Body;
        tokio::time::pause();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let jobs: Api<Job> = Api::namespaced(kube::Client::new(service, "ns"), "ns");
        let apiserver = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("job list");
            assert_eq!(request.uri().path(), "/apis/batch/v1/namespaces/ns/jobs");
            assert!(request
                .uri()
                .query()
                .unwrap()
                .contains("fieldSelector=metadata.name%3Dj"));
            let list = json!({
                "apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": "3"},
                "items": [{"metadata": {"name": "j", "namespace": "ns"}, "spec": {"template": {}}, "status": {"active": 1}}],
            });
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&list).unwrap(),
            )));
            let (request, _silent) = handle.next_request().await.expect("job watch");
            assert!(request.uri().query().unwrap().contains("watch=true"));
            let (request, send) = handle.next_request().await.expect("backstop get");
            assert_eq!(request.uri().path(), "/apis/batch/v1/namespaces/ns/jobs/j");
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&status).unwrap()))
                    .unwrap(),
            );
        });
        let end = await_job_end(jobs, "j".into()).await;
        assert!(
            matches!(
                end,
                JobEnd::Vanished {
                    detected_how: Detection::MissingOnPoll,
                    ..
                }
            ),
            "{end:?}"
        );
        apiserver.await.unwrap();
    }
}
