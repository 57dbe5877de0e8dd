//! The per-agent concurrency guard (SPEC §5 step 3, §6): list this agent's live Jobs, fail closed
//! when that is impossible, and classify any orphan as block or reattach. Never deletes a Job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::sync::OwnedMutexGuard;

use crate::error::ErrorCode;

/// How long listing an agent's live Jobs may take before the guard fails closed. A healthy
/// apiserver answers a label-selected list in milliseconds; past this, launching would risk two
/// Jobs of one agent.
pub const GUARD_TIMEOUT: Duration = Duration::from_secs(15);

const LABEL_RUN: &str = "paperclip.io/run-id";
const LABEL_TASK: &str = "paperclip.io/task-id";
const LABEL_SESSION: &str = "paperclip.io/session-id";

/// The guard could not decide.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the agent's Jobs failed.
    #[error("cannot list this agent's Jobs")]
    List(#[source] kube::Error),
    /// Listing the agent's Jobs took longer than [`GUARD_TIMEOUT`].
    #[error("listing this agent's Jobs took longer than {GUARD_TIMEOUT:?}")]
    ListTimedOut,
    /// Relabelling the orphan for reattach failed.
    #[error("cannot relabel Job {name} for this run")]
    Relabel {
        /// The orphan Job.
        name: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
    /// Another run relabelled the orphan first.
    #[error("Job {name} was taken over by run {run} meanwhile")]
    TakenOver {
        /// The orphan Job.
        name: String,
        /// The run id it carries now.
        run: String,
    },
}

impl Error {
    /// The SPEC error code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TakenOver { .. } => ErrorCode::ConcurrentRunBlocked,
            Self::List(_) | Self::ListTimedOut | Self::Relabel { .. } => {
                ErrorCode::ConcurrencyGuardUnreachable
            }
        }
    }
}

/// This run's identity as label values (already sanitised like the Job's labels).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisRun {
    /// `paperclip.io/run-id`
    pub run_id: String,
    /// `paperclip.io/task-id`, if the run has a task.
    pub task_id: Option<String>,
    /// `paperclip.io/session-id`, if the run resumes a session.
    pub session_id: Option<String>,
    /// Config `reattachOrphanedJobs`.
    pub reattach_orphaned_jobs: bool,
}

/// What the guard decided.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardDecision {
    /// No live Job: create ours.
    Proceed,
    /// Adopt this orphan: relabel it and stream its output as this run's.
    Reattach(Box<Job>),
    /// Do not run; fail with this code and message.
    Block(ErrorCode, String),
}

/// Lists this agent's live Jobs: `selector` names the agent id and adapter type labels
/// (`RunIds::agent_selector`), then [`is_live`] filters. Has no timeout of its own: [`check`]
/// wraps it in [`GUARD_TIMEOUT`].
///
/// # Errors
/// The list request's error.
pub async fn live_jobs(jobs: &Api<Job>, selector: &str) -> Result<Vec<Job>, kube::Error> {
    let list = jobs.list(&ListParams::default().labels(selector)).await?;
    Ok(list.items.into_iter().filter(is_live).collect())
}

/// A Job is live unless it is being deleted or has a `Complete` or `Failed` condition that is
/// `True` (interim `SuccessCriteriaMet` / `FailureTarget` do not count, SPEC §10).
pub fn is_live(job: &Job) -> bool {
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True");
    job.metadata.deletion_timestamp.is_none() && !finished
}

/// Classifies this agent's live Jobs against this run (SPEC §6). More than one live Job blocks:
/// there is no single orphan to adopt.
pub fn classify(live: &[Job], this: &ThisRun) -> GuardDecision {
    let blocked = |message: String| GuardDecision::Block(ErrorCode::ConcurrentRunBlocked, message);
    let job = match live {
        [] => return GuardDecision::Proceed,
        [job] => job,
        _ => {
            let names: Vec<&str> = live.iter().map(name).collect();
            return blocked(format!(
                "{} live Jobs of this agent exist ({}); none is deleted automatically",
                live.len(),
                names.join(", ")
            ));
        }
    };
    let (name, label) = (name(job), |key: &str| label(job, key));
    if label(LABEL_RUN) == Some(this.run_id.as_str()) {
        return blocked(format!("Job {name} of this same run is still live"));
    }
    if !this.reattach_orphaned_jobs {
        return blocked(format!(
            "Job {name} of run {} is still live and reattachOrphanedJobs is off",
            label(LABEL_RUN).unwrap_or("?")
        ));
    }
    let (Some(theirs), Some(ours)) = (label(LABEL_TASK), this.task_id.as_deref()) else {
        return GuardDecision::Block(
            ErrorCode::OrphanTaskUnknown,
            format!("Job {name} is still live and its task or this run's is unknown"),
        );
    };
    if theirs != ours {
        return blocked(format!(
            "Job {name} is still live on task {theirs}, this run is for task {ours}"
        ));
    }
    match (label(LABEL_SESSION), this.session_id.as_deref()) {
        (Some(theirs), Some(ours)) if theirs != ours => GuardDecision::Block(
            ErrorCode::OrphanSessionMismatch,
            format!(
                "Job {name} is still live on session {theirs}, this run resumes session {ours}"
            ),
        ),
        _ => GuardDecision::Reattach(Box::new(job.clone())),
    }
}

/// Lists this agent's live Jobs (see [`live_jobs`]) within [`GUARD_TIMEOUT`] and classifies them. Hold
/// [`lock_agent`] from before this call until the Job is created or reattached.
///
/// # Errors
/// [`Error::List`] or [`Error::ListTimedOut`]: fail closed with
/// `k8s_concurrency_guard_unreachable`.
pub async fn check(
    jobs: &Api<Job>,
    selector: &str,
    this: &ThisRun,
) -> Result<GuardDecision, Error> {
    let live = tokio::time::timeout(GUARD_TIMEOUT, live_jobs(jobs, selector))
        .await
        .map_err(|_| Error::ListTimedOut)?
        .map_err(Error::List)?;
    Ok(classify(&live, this))
}

/// Serialises guard-then-create per agent inside this process. Hold the returned guard until the
/// Job exists (or the orphan is relabelled).
pub async fn lock_agent(agent_id: &str) -> OwnedMutexGuard<()> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let lock = {
        let mut locks = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Drop the locks nobody holds or waits for, so the map stays as small as the live agents.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(locks.entry(agent_id.to_owned()).or_default())
    };
    lock.lock_owned().await
}

/// Conflicts tolerated while relabelling: the Job controller updates an orphan's status (and so
/// its resourceVersion) whenever its pod changes, which is no reason to give up the reattach.
const RELABEL_ATTEMPTS: usize = 3;

/// Relabels `job` (as listed) with this run's id, and session if any, for reattach. Each patch
/// carries the resourceVersion it was decided on; on a conflict the Job is read again and, if it
/// still carries the listed run id, patched again. So when two adapters race for one orphan,
/// exactly one wins.
///
/// # Errors
/// [`Error::TakenOver`] when another run relabelled it first; [`Error::Relabel`] otherwise.
pub async fn relabel_for_reattach(
    jobs: &Api<Job>,
    job: &Job,
    run_id: &str,
    session_id: Option<&str>,
) -> Result<Job, Error> {
    let name = name(job).to_owned();
    let listed_run = label(job, LABEL_RUN).map(str::to_owned);
    let mut labels = serde_json::Map::new();
    labels.insert(LABEL_RUN.into(), run_id.into());
    if let Some(session) = session_id {
        labels.insert(LABEL_SESSION.into(), session.into());
    }
    let relabel_err = |source| Error::Relabel {
        name: name.clone(),
        source,
    };
    let mut resource_version = job.metadata.resource_version.clone();
    let mut attempts = 1;
    loop {
        let patch = json!({"metadata": {"labels": labels, "resourceVersion": resource_version}});
        match jobs
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(status))
                if status.is_conflict() && attempts < RELABEL_ATTEMPTS =>
            {
                attempts += 1;
                let current = jobs.get(&name).await.map_err(relabel_err)?;
                let current_run = label(&current, LABEL_RUN);
                if current_run != listed_run.as_deref() {
                    return Err(Error::TakenOver {
                        run: current_run.unwrap_or("?").to_owned(),
                        name,
                    });
                }
                resource_version = current.metadata.resource_version;
            }
            result => return result.map_err(relabel_err),
        }
    }
}

fn name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or("?")
}

fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::cleanup::mock::{client, status};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn job(name: &str, labels: &[(&str, &str)]) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("42".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Job::default()
        }
    }

    fn orphan(task: Option<&str>, session: Option<&str>) -> Job {
        let mut labels = vec![(LABEL_RUN, "old-run")];
        labels.extend(task.map(|t| (LABEL_TASK, t)));
        labels.extend(session.map(|s| (LABEL_SESSION, s)));
        job("orphan", &labels)
    }

    fn this(task: Option<&str>, session: Option<&str>) -> ThisRun {
        ThisRun {
            run_id: "new-run".into(),
            task_id: task.map(Into::into),
            session_id: session.map(Into::into),
            reattach_orphaned_jobs: true,
        }
    }

    fn code(decision: GuardDecision) -> ErrorCode {
        match decision {
            GuardDecision::Block(code, _) => code,
            other => panic!("expected a block, got {other:?}"),
        }
    }

    fn with_condition(type_: &str, status: &str) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: type_.into(),
                    status: status.into(),
                    ..JobCondition::default()
                }]),
                ..JobStatus::default()
            }),
            ..job("j", &[])
        }
    }

    #[test]
    fn is_live_until_complete_failed_or_being_deleted() {
        assert!(is_live(&job("j", &[])));
        assert!(!is_live(&with_condition("Complete", "True")));
        assert!(!is_live(&with_condition("Failed", "True")));
        assert!(is_live(&with_condition("Failed", "False")));
        assert!(is_live(&with_condition("SuccessCriteriaMet", "True")));
        assert!(is_live(&with_condition("FailureTarget", "True")));
        let mut deleting = job("j", &[]);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(!is_live(&deleting));
    }

    #[test]
    fn no_live_job_proceeds() {
        assert_eq!(
            classify(&[], &this(Some("t"), None)),
            GuardDecision::Proceed
        );
    }

    #[test]
    fn a_live_job_of_the_same_run_blocks_even_with_reattach_on() {
        let same = job("j", &[(LABEL_RUN, "new-run"), (LABEL_TASK, "t")]);
        let decision = classify(&[same], &this(Some("t"), None));
        assert_eq!(code(decision), ErrorCode::ConcurrentRunBlocked);
    }

    #[test]
    fn any_orphan_blocks_when_reattach_is_off() {
        let run = ThisRun {
            reattach_orphaned_jobs: false,
            ..this(Some("t"), None)
        };
        let decision = classify(&[orphan(Some("t"), None)], &run);
        assert_eq!(code(decision), ErrorCode::ConcurrentRunBlocked);
    }

    #[test]
    fn a_missing_task_on_either_side_is_orphan_task_unknown() {
        let theirs_missing = classify(&[orphan(None, None)], &this(Some("t"), None));
        assert_eq!(code(theirs_missing), ErrorCode::OrphanTaskUnknown);
        let ours_missing = classify(&[orphan(Some("t"), None)], &this(None, None));
        assert_eq!(code(ours_missing), ErrorCode::OrphanTaskUnknown);
        let empty_label = classify(&[orphan(Some(""), None)], &this(Some("t"), None));
        assert_eq!(code(empty_label), ErrorCode::OrphanTaskUnknown);
    }

    #[test]
    fn an_orphan_on_another_task_blocks() {
        let decision = classify(&[orphan(Some("t1"), None)], &this(Some("t2"), None));
        assert_eq!(code(decision), ErrorCode::ConcurrentRunBlocked);
    }

    #[test]
    fn same_task_different_session_is_a_session_mismatch() {
        let decision = classify(
            &[orphan(Some("t"), Some("s1"))],
            &this(Some("t"), Some("s2")),
        );
        assert_eq!(code(decision), ErrorCode::OrphanSessionMismatch);
    }

    #[test]
    fn same_task_with_same_or_absent_session_reattaches() {
        for (theirs, ours) in [
            (Some("s"), Some("s")),
            (None, Some("s")),
            (Some("s"), None),
            (None, None),
        ] {
            let decision = classify(&[orphan(Some("t"), theirs)], &this(Some("t"), ours));
            assert_eq!(
                decision,
                GuardDecision::Reattach(Box::new(orphan(Some("t"), theirs)))
            );
        }
    }

    #[test]
    fn two_live_jobs_block_naming_both() {
        let live = [orphan(Some("t"), None), job("other", &[(LABEL_TASK, "t")])];
        let GuardDecision::Block(code, message) = classify(&live, &this(Some("t"), None)) else {
            panic!("expected a block");
        };
        assert_eq!(code, ErrorCode::ConcurrentRunBlocked);
        assert!(message.contains("orphan, other"), "{message}");
    }

    const SELECTOR: &str = "paperclip.io/agent-id=a1,paperclip.io/adapter-type=claude_k8s";
    const LIST_URI: &str = "/apis/batch/v1/namespaces/ns/jobs?&labelSelector=paperclip.io%2Fagent-id%3Da1%2Cpaperclip.io%2Fadapter-type%3Dclaude_k8s";

    #[tokio::test]
    async fn check_lists_by_agent_and_adapter_and_ignores_finished_jobs() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            let finished = serde_json::to_value(with_condition("Complete", "True")).unwrap();
            let list = json!({"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": [finished]});
            server.expect("GET", LIST_URI, 200, list).await;
        });
        let decision = check(&jobs, SELECTOR, &this(Some("t"), None))
            .await
            .unwrap();
        assert_eq!(decision, GuardDecision::Proceed);
        server.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn check_fails_closed_when_the_list_hangs() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        tokio::spawn(async move { server.hang().await });
        let err = check(&jobs, SELECTOR, &this(Some("t"), None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ListTimedOut));
        assert_eq!(err.code(), ErrorCode::ConcurrencyGuardUnreachable);
    }

    #[tokio::test]
    async fn check_fails_closed_when_the_list_fails() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        tokio::spawn(async move {
            server
                .expect("GET", LIST_URI, 403, status(403, "Forbidden"))
                .await;
        });
        let err = check(&jobs, SELECTOR, &this(Some("t"), None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::List(_)));
        assert_eq!(err.code(), ErrorCode::ConcurrencyGuardUnreachable);
    }

    const ORPHAN_URI: &str = "/apis/batch/v1/namespaces/ns/jobs/orphan?";
    const ORPHAN_GET_URI: &str = "/apis/batch/v1/namespaces/ns/jobs/orphan";

    fn orphan_json(run: &str, resource_version: &str) -> serde_json::Value {
        let mut job = orphan(Some("t"), None);
        job.metadata.resource_version = Some(resource_version.into());
        job.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_RUN.into(), run.into());
        serde_json::to_value(job).unwrap()
    }

    #[tokio::test]
    async fn relabel_retries_a_conflict_from_a_status_update_on_the_fresh_version() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            let patch = server
                .expect("PATCH", ORPHAN_URI, 409, status(409, "Conflict"))
                .await;
            assert_eq!(patch["metadata"]["labels"][LABEL_RUN], "new-run");
            assert_eq!(patch["metadata"]["labels"][LABEL_SESSION], "s");
            assert_eq!(patch["metadata"]["resourceVersion"], "42");
            server
                .expect("GET", ORPHAN_GET_URI, 200, orphan_json("old-run", "43"))
                .await;
            let relabelled = orphan_json("new-run", "44");
            let patch = server.expect("PATCH", ORPHAN_URI, 200, relabelled).await;
            assert_eq!(patch["metadata"]["resourceVersion"], "43");
        });
        let job = relabel_for_reattach(&jobs, &orphan(Some("t"), None), "new-run", Some("s"))
            .await
            .unwrap();
        assert_eq!(label(&job, LABEL_RUN), Some("new-run"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn relabel_gives_way_when_another_run_took_the_orphan() {
        let (client, mut server) = client();
        let jobs: Api<Job> = Api::namespaced(client, "ns");
        let server = tokio::spawn(async move {
            server
                .expect("PATCH", ORPHAN_URI, 409, status(409, "Conflict"))
                .await;
            server
                .expect("GET", ORPHAN_GET_URI, 200, orphan_json("rival-run", "43"))
                .await;
        });
        let err = relabel_for_reattach(&jobs, &orphan(Some("t"), None), "new-run", None)
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::TakenOver { run, .. } if run == "rival-run"));
        assert_eq!(err.code(), ErrorCode::ConcurrentRunBlocked);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn lock_agent_serialises_one_agent_but_not_others() {
        let held = lock_agent("agent-a").await;
        let other = lock_agent("agent-b").await;
        let mut waiting = Box::pin(lock_agent("agent-a"));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(held);
        drop(waiting.await);
        drop(other);
    }
}
