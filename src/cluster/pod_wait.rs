//! Waits for a Job's pod to start, saying what it is doing, and fails fast with the scheduler's or
//! kubelet's reason when it cannot start. [`diagnose`] is pure; only [`await_pod_started`] talks
//! to the cluster, and it only reads.

use std::fmt;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use tokio::time::Instant;

/// The container that runs Claude Code; its state decides when a run has started and how it ended.
pub const CLAUDE_CONTAINER: &str = "claude";

/// How long a Job may go without its pod being scheduled. Covers the Job controller creating the
/// pod and the scheduler placing it; a pod the scheduler rejects fails sooner, after
/// [`UNSCHEDULABLE_GRACE`].
pub const SCHEDULE_BUDGET: Duration = Duration::from_secs(60);
/// How long a scheduled pod may take to get its `claude` container running: image pulls of an
/// agent image (Claude Code, a toolchain) take minutes on a cold node, so this is much longer than
/// the scheduling budget. Pull failures the kubelet reports end the wait at once anyway.
pub const START_BUDGET: Duration = Duration::from_secs(10 * 60);
/// How long a pod may stay `Unschedulable` before the run fails with the scheduler's message. The
/// scheduler reports it at its first attempt, and the cause is often momentary: the previous run's
/// pod still terminating and holding its resource requests, or a node just joining. Waiting for a
/// cluster autoscaler (minutes) is not worth blocking a heartbeat for: fail and say why.
pub const UNSCHEDULABLE_GRACE: Duration = Duration::from_secs(10);

/// Container waiting reasons that mean the image will not be there.
const IMAGE_FAILURES: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// What a pod is doing, as far as starting a run is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not started yet; the reason says what it waits for (`ContainerCreating`, `Init:0/1`, ...).
    Pending {
        /// kubectl-style reason, if there is one.
        reason: Option<String>,
    },
    /// The scheduler found no node for the pod.
    Unschedulable {
        /// The scheduler's message (`0/1 nodes are available: ...`).
        message: String,
    },
    /// A container's image cannot be pulled or used.
    ImagePullFailed {
        /// Which container.
        container: String,
        /// `ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`, ...
        reason: String,
        /// The kubelet's message.
        message: Option<String>,
    },
    /// The kubelet cannot build a container's config (a missing Secret or key, usually).
    ContainerConfigError {
        /// Which container.
        container: String,
        /// The kubelet's message.
        message: Option<String>,
    },
    /// A container keeps crashing.
    CrashLoopBackOff {
        /// Which container.
        container: String,
        /// The kubelet's message.
        message: Option<String>,
    },
    /// An init container exited non-zero, so the main container never runs.
    InitContainerFailed {
        /// Which init container.
        container: String,
        /// Its exit code.
        exit_code: i32,
        /// `Error`, `OOMKilled`, ...
        reason: Option<String>,
        /// The runtime's message.
        message: Option<String>,
    },
    /// The pod's phase is `Failed` before `claude` ran (e.g. evicted, or past its deadline).
    Failed {
        /// `DeadlineExceeded`, `Evicted`, ...
        reason: Option<String>,
        /// The kubelet's message.
        message: Option<String>,
    },
    /// The `claude` container runs.
    Running,
    /// The `claude` container already exited (a very short run).
    Terminated {
        /// Its exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`, ...
        reason: Option<String>,
    },
    /// The pod's phase is `Succeeded` (with no container status left to read).
    Succeeded,
}

impl PodState {
    /// Whether the run's container has started: its output can be followed.
    pub fn has_started(&self) -> bool {
        matches!(
            self,
            Self::Running | Self::Terminated { .. } | Self::Succeeded
        )
    }

    /// Whether the pod cannot start by itself any more (`Unschedulable` counts only after a grace,
    /// see [`UNSCHEDULABLE_GRACE`]).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::ImagePullFailed { .. }
                | Self::ContainerConfigError { .. }
                | Self::CrashLoopBackOff { .. }
                | Self::InitContainerFailed { .. }
                | Self::Failed { .. }
        )
    }
}

impl fmt::Display for PodState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending {
                reason: Some(reason),
            } => write!(f, "Pending ({reason})"),
            Self::Pending { reason: None } => f.write_str("Pending"),
            Self::Unschedulable { message } => write!(f, "Unschedulable: {message}"),
            Self::ImagePullFailed {
                container,
                reason,
                message,
            } => {
                write!(f, "{reason} (container {container}){}", detail(message))
            }
            Self::ContainerConfigError { container, message } => {
                write!(
                    f,
                    "CreateContainerConfigError (container {container}){}",
                    detail(message)
                )
            }
            Self::CrashLoopBackOff { container, message } => {
                write!(
                    f,
                    "CrashLoopBackOff (container {container}){}",
                    detail(message)
                )
            }
            Self::InitContainerFailed {
                container,
                exit_code,
                reason,
                message,
            } => {
                write!(
                    f,
                    "init container {container} failed with exit code {exit_code}"
                )?;
                if let Some(reason) = reason {
                    write!(f, " ({reason})")?;
                }
                f.write_str(&detail(message))
            }
            Self::Failed { reason, message } => {
                f.write_str("Failed")?;
                if let Some(reason) = reason {
                    write!(f, " ({reason})")?;
                }
                f.write_str(&detail(message))
            }
            Self::Running => f.write_str("Running"),
            Self::Terminated { exit_code, reason } => {
                write!(
                    f,
                    "container {CLAUDE_CONTAINER} exited with code {exit_code}"
                )?;
                match reason {
                    Some(reason) => write!(f, " ({reason})"),
                    None => Ok(()),
                }
            }
            Self::Succeeded => f.write_str("Succeeded"),
        }
    }
}

fn detail(message: &Option<String>) -> String {
    match message.as_deref().map(str::trim) {
        Some(message) if !message.is_empty() => format!(": {message}"),
        _ => String::new(),
    }
}

/// What `pod` is doing, from its status alone: the `claude` container's state first (so a run that
/// already ended counts as started, even if the pod then failed, e.g. past its deadline), then
/// container problems (they say more than the phase `Failed` they cause), then the pod's phase,
/// then the scheduler's verdict.
pub fn diagnose(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else {
        return PodState::Pending { reason: None };
    };
    let main = status.container_statuses.as_deref().unwrap_or_default();
    let init = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    if let Some(state) = main
        .iter()
        .find(|c| c.name == CLAUDE_CONTAINER)
        .and_then(|c| c.state.as_ref())
    {
        if let Some(terminated) = &state.terminated {
            return PodState::Terminated {
                exit_code: terminated.exit_code,
                reason: terminated.reason.clone(),
            };
        }
        if state.running.is_some() {
            return PodState::Running;
        }
    }
    if let Some(failure) = init.iter().chain(main).find_map(container_failure) {
        return failure;
    }
    match status.phase.as_deref() {
        Some("Failed") => {
            return PodState::Failed {
                reason: status.reason.clone(),
                message: status.message.clone(),
            }
        }
        Some("Succeeded") => return PodState::Succeeded,
        _ => {}
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        return PodState::Unschedulable {
            message: condition.message.clone().unwrap_or_default(),
        };
    }
    PodState::Pending {
        reason: pending_reason(init, main),
    }
}

/// A container's state that means the pod cannot start.
fn container_failure(container: &ContainerStatus) -> Option<PodState> {
    let state = container.state.as_ref()?;
    let name = container.name.clone();
    if let Some(terminated) = &state.terminated {
        // Only init containers are checked while terminated here: `claude` terminated is a start.
        return (terminated.exit_code != 0).then(|| PodState::InitContainerFailed {
            container: name,
            exit_code: terminated.exit_code,
            reason: terminated.reason.clone(),
            message: terminated.message.clone(),
        });
    }
    let waiting = state.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let message = waiting.message.clone();
    match reason {
        _ if IMAGE_FAILURES.contains(&reason) => Some(PodState::ImagePullFailed {
            container: name,
            reason: reason.to_owned(),
            message,
        }),
        "CreateContainerConfigError" => Some(PodState::ContainerConfigError {
            container: name,
            message,
        }),
        "CrashLoopBackOff" => Some(PodState::CrashLoopBackOff {
            container: name,
            message,
        }),
        _ => None,
    }
}

/// kubectl's way of saying what a pending pod waits for: `Init:<reason>` or `Init:<done>/<all>`
/// while init containers run, then the main container's waiting reason.
fn pending_reason(init: &[ContainerStatus], main: &[ContainerStatus]) -> Option<String> {
    let done = init
        .iter()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        .count();
    if let Some(current) = init.get(done) {
        let waiting = current
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        return Some(match waiting {
            Some(reason) if reason != "PodInitializing" => format!("Init:{reason}"),
            _ => format!("Init:{done}/{}", init.len()),
        });
    }
    main.iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
}

/// Whether the scheduler has placed the pod on a node.
fn is_scheduled(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
        || pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
}

/// The stdout line announcing a pod's state, e.g.
/// `[claude_k8s] pod ac-x-1-abc123-q2w3e: Pending (ContainerCreating)` (no trailing newline).
pub fn status_line(pod: &str, state: &PodState) -> String {
    format!("[claude_k8s] pod {pod}: {state}")
}

/// Time budgets for a pod to start; each is a separate clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// From the call until the pod is scheduled.
    pub schedule: Duration,
    /// From the pod being scheduled until `claude` runs.
    pub start: Duration,
    /// How long `Unschedulable` may last.
    pub unschedulable_grace: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            schedule: SCHEDULE_BUDGET,
            start: START_BUDGET,
            unschedulable_grace: UNSCHEDULABLE_GRACE,
        }
    }
}

/// One step of a pod's start.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A status line (see [`status_line`]), sent once per change of state.
    Status(String),
    /// The `claude` container runs or has already exited: follow its log. Always the last item.
    Started(Box<Pod>),
}

/// The pod did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubelet or the scheduler gave a reason the pod cannot start.
    #[error("pod {pod} cannot start: {state}")]
    CannotStart {
        /// The pod.
        pod: String,
        /// What it is doing.
        state: PodState,
    },
    /// No pod of the Job got scheduled within the scheduling budget.
    #[error("no pod of job {job} was scheduled within {} s{}", budget.as_secs(), last_seen(last))]
    ScheduleBudget {
        /// The Job.
        job: String,
        /// The budget that ran out.
        budget: Duration,
        /// The last pod seen and its state (`pod <name>: <state>`), if any pod was seen.
        last: Option<String>,
        /// The last failure of the pod watch, if it failed (the apiserver may be unreachable).
        #[source]
        watch_error: Option<Box<watcher::Error>>,
    },
    /// The pod was scheduled but `claude` did not start within the start budget.
    #[error("pod {pod} did not start within {} s of being scheduled: {state}", budget.as_secs())]
    StartBudget {
        /// The pod.
        pod: String,
        /// The budget that ran out.
        budget: Duration,
        /// Its last state, as in a status line.
        state: String,
        /// The last failure of the pod watch, if it failed.
        #[source]
        watch_error: Option<Box<watcher::Error>>,
    },
}

fn last_seen(last: &Option<String>) -> String {
    match last {
        Some(last) => format!(" ({last})"),
        None => " (no pod was created)".to_owned(),
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Watches the pods of Job `job` (label `job-name=<job>`) until one has its `claude` container
/// running or terminated, yielding a [`Progress::Status`] line whenever the pod's state changes
/// and [`Progress::Started`] last. The watch restarts with backoff on errors; the budgets bound
/// the wait, each its own clock. Await each item (e.g. send the line to `onLog`) before the next.
///
/// # Errors
/// Yields (and ends with) [`Error::CannotStart`] as soon as the pod cannot start (image, config,
/// init container, crash loop, failed phase; `Unschedulable` after the grace), or a budget error.
pub fn await_pod_started(
    pods: Api<Pod>,
    job: &str,
    budgets: Budgets,
) -> BoxStream<'static, Result<Progress>> {
    let config = watcher::Config::default().labels(&format!("job-name={job}"));
    let now = Instant::now();
    let waiter = Waiter {
        job: job.to_owned(),
        budgets,
        events: watcher(pods, config).default_backoff().boxed(),
        schedule_deadline: now + budgets.schedule,
        start_deadline: None,
        unschedulable_since: None,
        current: None,
        watch_error: None,
        queued: None,
        done: false,
    };
    Box::pin(stream::unfold(waiter, |mut waiter| async move {
        let item = waiter.next().await?;
        Some((item, waiter))
    }))
}

struct Waiter {
    job: String,
    budgets: Budgets,
    events: BoxStream<'static, watcher::Result<Event<Pod>>>,
    schedule_deadline: Instant,
    start_deadline: Option<Instant>,
    unschedulable_since: Option<Instant>,
    /// The newest pod seen and its state.
    current: Option<(Pod, PodState)>,
    watch_error: Option<Box<watcher::Error>>,
    /// The final item, held back until the status line before it was taken.
    queued: Option<Result<Progress>>,
    done: bool,
}

impl Waiter {
    async fn next(&mut self) -> Option<Result<Progress>> {
        if self.done {
            return None;
        }
        if let Some(last) = self.queued.take() {
            self.done = true;
            return Some(last);
        }
        loop {
            let deadline = self.deadline();
            let Ok(event) = tokio::time::timeout_at(deadline, self.events.next()).await else {
                self.done = true;
                return Some(Err(self.out_of_time()));
            };
            match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    if let Some(item) = self.observe(pod) {
                        return Some(item);
                    }
                }
                Some(Ok(Event::Delete(_) | Event::Init | Event::InitDone)) => {}
                Some(Err(err)) => {
                    tracing::warn!(job = %self.job, error = %err, "watching the Job's pods failed; retrying");
                    self.watch_error = Some(Box::new(err));
                }
                None => return None,
            }
        }
    }

    fn deadline(&self) -> Instant {
        match (self.unschedulable_since, self.start_deadline) {
            (Some(since), _) => self
                .schedule_deadline
                .min(since + self.budgets.unschedulable_grace),
            (None, Some(start)) => start,
            (None, None) => self.schedule_deadline,
        }
    }

    /// Takes a pod's new state; returns the item to yield, if any.
    fn observe(&mut self, pod: Pod) -> Option<Result<Progress>> {
        if pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        if let Some((current, _)) = &self.current {
            let older = pod.metadata.creation_timestamp < current.metadata.creation_timestamp;
            if older && pod.metadata.name != current.metadata.name {
                return None;
            }
        }
        let now = Instant::now();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let state = diagnose(&pod);
        if self.start_deadline.is_none() && is_scheduled(&pod) {
            self.start_deadline = Some(now + self.budgets.start);
        }
        self.unschedulable_since = match state {
            PodState::Unschedulable { .. } => Some(self.unschedulable_since.unwrap_or(now)),
            _ => None,
        };
        let changed = self
            .current
            .as_ref()
            .map_or(true, |(_, last)| *last != state);
        let line = changed.then(|| Ok(Progress::Status(status_line(&name, &state))));
        let grace_over = self
            .unschedulable_since
            .is_some_and(|since| now >= since + self.budgets.unschedulable_grace);
        let last = if state.has_started() {
            Some(Ok(Progress::Started(Box::new(pod.clone()))))
        } else if state.is_failure() || grace_over {
            Some(Err(Error::CannotStart {
                pod: name,
                state: state.clone(),
            }))
        } else {
            None
        };
        self.current = Some((pod, state));
        match (line, last) {
            (Some(line), Some(last)) => {
                self.queued = Some(last);
                Some(line)
            }
            (None, Some(last)) => {
                self.done = true;
                Some(last)
            }
            (line, None) => line,
        }
    }

    fn out_of_time(&mut self) -> Error {
        let watch_error = self.watch_error.take();
        let current = self
            .current
            .take()
            .map(|(pod, state)| (pod.metadata.name.unwrap_or_default(), state));
        match (current, self.start_deadline.is_some()) {
            (Some((pod, state @ PodState::Unschedulable { .. })), _) => {
                Error::CannotStart { pod, state }
            }
            (Some((pod, state)), true) => Error::StartBudget {
                pod,
                budget: self.budgets.start,
                state: state.to_string(),
                watch_error,
            },
            (last, _) => Error::ScheduleBudget {
                job: self.job.clone(),
                budget: self.budgets.schedule,
                last: last.map(|(pod, state)| format!("pod {pod}: {state}")),
                watch_error,
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pod as `kubectl get pod -o json` showed it on the 1.20 testbed (managedFields dropped).
    pub(crate) fn fixture(name: &str) -> Pod {
        let path = format!(
            "{}/tests/fixtures/pods/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn a_running_claude_container_has_started() {
        assert_eq!(diagnose(&fixture("running")), PodState::Running);
    }

    #[test]
    fn a_claude_container_that_already_exited_has_started() {
        let completed = diagnose(&fixture("completed"));
        assert_eq!(
            completed,
            PodState::Terminated {
                exit_code: 0,
                reason: some("Completed")
            }
        );
        assert!(completed.has_started());
        let failed = diagnose(&fixture("exited-1"));
        assert_eq!(
            failed,
            PodState::Terminated {
                exit_code: 1,
                reason: some("Error")
            }
        );
        assert!(failed.has_started());
    }

    #[test]
    fn a_pod_past_its_deadline_after_claude_started_counts_as_started() {
        assert_eq!(
            diagnose(&fixture("deadline-while-running")),
            PodState::Running
        );
    }

    #[test]
    fn an_oom_killed_claude_container_has_started_and_ended() {
        let state = diagnose(&fixture("oomkilled"));
        assert_eq!(
            state,
            PodState::Terminated {
                exit_code: 137,
                reason: some("OOMKilled")
            }
        );
        assert_eq!(
            state.to_string(),
            "container claude exited with code 137 (OOMKilled)"
        );
    }

    #[test]
    fn a_pod_past_its_deadline_before_claude_started_fails_with_the_reason() {
        let state = diagnose(&fixture("deadline-in-init"));
        assert!(
            matches!(&state, PodState::Failed { reason: Some(r), .. } if r == "DeadlineExceeded"),
            "{state:?}"
        );
        assert!(state.is_failure());
    }

    #[test]
    fn a_pod_not_yet_scheduled_is_plainly_pending() {
        let state = diagnose(&fixture("not-yet-scheduled"));
        assert_eq!(state, PodState::Pending { reason: None });
        assert_eq!(state.to_string(), "Pending");
    }

    #[test]
    fn a_pod_waiting_for_a_volume_is_pending_with_the_reason() {
        let state = diagnose(&fixture("secret-volume-missing"));
        assert_eq!(
            state,
            PodState::Pending {
                reason: some("ContainerCreating")
            }
        );
        assert!(!state.has_started() && !state.is_failure());
    }

    #[test]
    fn a_pod_in_its_init_container_is_pending_init() {
        assert_eq!(
            diagnose(&fixture("init-running")),
            PodState::Pending {
                reason: some("Init:0/1")
            }
        );
    }

    #[test]
    fn unschedulable_carries_the_scheduler_message_and_waits_for_the_grace() {
        let state = diagnose(&fixture("unschedulable"));
        let message =
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity.".to_owned();
        assert_eq!(state, PodState::Unschedulable { message });
        assert!(!state.is_failure());
    }

    #[test]
    fn a_missing_image_fails_with_the_kubelet_message() {
        let PodState::ImagePullFailed {
            container,
            reason,
            message,
        } = diagnose(&fixture("image-missing"))
        else {
            panic!("not an image failure");
        };
        assert_eq!(
            (container.as_str(), reason.as_str()),
            ("claude", "ErrImagePull")
        );
        assert!(message
            .unwrap()
            .contains("localhost/paperclip-does-not-exist:1"));
    }

    #[test]
    fn an_invalid_image_name_fails() {
        let state = diagnose(&fixture("image-invalid"));
        assert!(
            matches!(&state, PodState::ImagePullFailed { reason, .. } if reason == "InvalidImageName")
        );
        assert!(state.is_failure());
    }

    #[test]
    fn a_missing_secret_key_fails_as_a_config_error() {
        let state = diagnose(&fixture("config-error"));
        let expected = PodState::ContainerConfigError {
            container: "claude".into(),
            message: some("secret \"no-such-secret\" not found"),
        };
        assert_eq!(state, expected);
        assert!(state.is_failure());
    }

    #[test]
    fn a_crash_loop_fails() {
        let state = diagnose(&fixture("crashloop"));
        assert!(
            matches!(&state, PodState::CrashLoopBackOff { container, .. } if container == "claude")
        );
        assert!(state.is_failure());
    }

    #[test]
    fn a_failed_init_container_fails_with_its_exit_code_rather_than_the_bare_phase() {
        let state = diagnose(&fixture("init-failed"));
        let expected = PodState::InitContainerFailed {
            container: "prompt".into(),
            exit_code: 3,
            reason: some("Error"),
            message: None,
        };
        assert_eq!(state, expected);
        assert_eq!(
            state.to_string(),
            "init container prompt failed with exit code 3 (Error)"
        );
    }

    #[test]
    fn status_lines_name_the_pod_and_the_reason() {
        let pod = fixture("secret-volume-missing");
        let line = status_line("secret-volume-missing", &diagnose(&pod));
        assert_eq!(
            line,
            "[claude_k8s] pod secret-volume-missing: Pending (ContainerCreating)"
        );
        let line = status_line("p", &diagnose(&fixture("config-error")));
        assert_eq!(line, "[claude_k8s] pod p: CreateContainerConfigError (container claude): secret \"no-such-secret\" not found");
    }

    mod watched {
        use super::*;
        use http::{Request, Response};
        use kube::client::Body;
        use serde_json::json;
        use tower_test::mock::Handle;

        const BUDGETS: Budgets = Budgets {
            schedule: Duration::from_secs(60),
            start: Duration::from_secs(600),
            unschedulable_grace: Duration::from_secs(10),
        };

        /// Fixture `name`, renamed `p`, as the pod of Job `j`.
        fn pod(name: &str) -> Pod {
            let mut pod = fixture(name);
            pod.metadata.name = Some("p".into());
            pod
        }

        /// Answers the list that starts the watch of Job `j`'s pods with `pods`, then the watch
        /// with `events` (the watch stays open when there are none).
        fn apiserver(
            pods: Vec<Pod>,
            events: Vec<(&'static str, Pod)>,
        ) -> (Api<Pod>, tokio::task::JoinHandle<()>) {
            let (service, mut handle): (_, Handle<Request<Body>, Response<Body>>) =
                tower_test::mock::pair();
            let task = tokio::spawn(async move {
                let (request, send) = handle.next_request().await.expect("pod list");
                assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/pods");
                assert!(request
                    .uri()
                    .query()
                    .unwrap()
                    .contains("labelSelector=job-name%3Dj"));
                let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": pods});
                send.send_response(Response::new(Body::from(
                    serde_json::to_vec(&list).unwrap(),
                )));
                let (request, send) = handle.next_request().await.expect("pod watch");
                assert!(request.uri().query().unwrap().contains("watch=true"));
                if events.is_empty() {
                    // Hold the watch open and silent until the waiter gives up.
                    let _silent = send;
                    let _ = handle.next_request().await;
                    return;
                }
                let mut body = Vec::new();
                for (kind, pod) in events {
                    serde_json::to_writer(&mut body, &json!({"type": kind, "object": pod}))
                        .unwrap();
                    body.push(b'\n');
                }
                send.send_response(Response::new(Body::from(body)));
            });
            (
                Api::namespaced(kube::Client::new(service, "ns"), "ns"),
                task,
            )
        }

        async fn run(pods: Api<Pod>) -> (Vec<String>, Result<Pod>) {
            let mut progress = await_pod_started(pods, "j", BUDGETS);
            let mut lines = Vec::new();
            while let Some(item) = progress.next().await {
                match item {
                    Ok(Progress::Status(line)) => lines.push(line),
                    Ok(Progress::Started(pod)) => {
                        assert!(progress.next().await.is_none(), "Started is the last item");
                        return (lines, Ok(*pod));
                    }
                    Err(err) => {
                        assert!(progress.next().await.is_none(), "an error is the last item");
                        return (lines, Err(err));
                    }
                }
            }
            panic!("ended without a verdict: {lines:?}");
        }

        #[tokio::test]
        async fn one_line_per_change_of_state_then_the_started_pod() {
            let creating = pod("secret-volume-missing");
            let events = vec![("MODIFIED", creating.clone()), ("MODIFIED", pod("running"))];
            let (pods, apiserver) = apiserver(vec![creating], events);
            let (lines, started) = run(pods).await;
            assert_eq!(
                lines,
                [
                    "[claude_k8s] pod p: Pending (ContainerCreating)",
                    "[claude_k8s] pod p: Running"
                ]
            );
            assert_eq!(diagnose(&started.unwrap()), PodState::Running);
            apiserver.await.unwrap();
        }

        #[tokio::test]
        async fn a_failure_is_announced_then_returned_with_the_reason() {
            let (pods, apiserver) = apiserver(
                vec![pod("init-running")],
                vec![("MODIFIED", pod("init-failed"))],
            );
            let (lines, started) = run(pods).await;
            assert_eq!(lines.len(), 2, "{lines:?}");
            let err = started.unwrap_err();
            assert_eq!(
                err.to_string(),
                "pod p cannot start: init container prompt failed with exit code 3 (Error)"
            );
            apiserver.await.unwrap();
        }

        #[tokio::test]
        async fn a_pod_stuck_creating_fails_when_the_start_budget_runs_out() {
            tokio::time::pause();
            let (pods, apiserver) = apiserver(vec![pod("secret-volume-missing")], vec![]);
            let (_, started) = run(pods).await;
            let err = started.unwrap_err();
            assert!(
                matches!(&err, Error::StartBudget { budget, .. } if *budget == BUDGETS.start),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "pod p did not start within 600 s of being scheduled: Pending (ContainerCreating)"
            );
            apiserver.await.unwrap();
        }

        #[tokio::test]
        async fn unschedulable_fails_after_the_grace_with_the_scheduler_message() {
            tokio::time::pause();
            let (pods, apiserver) = apiserver(vec![pod("unschedulable")], vec![]);
            let (lines, started) = run(pods).await;
            assert_eq!(lines.len(), 1, "{lines:?}");
            let state = match started.unwrap_err() {
                Error::CannotStart { state, .. } => state,
                other => panic!("{other:?}"),
            };
            assert!(matches!(state, PodState::Unschedulable { .. }), "{state:?}");
            apiserver.await.unwrap();
        }

        #[tokio::test]
        async fn no_pod_at_all_fails_when_the_schedule_budget_runs_out() {
            tokio::time::pause();
            let (pods, apiserver) = apiserver(vec![], vec![]);
            let (lines, started) = run(pods).await;
            assert!(lines.is_empty());
            let err = started.unwrap_err();
            assert_eq!(
                err.to_string(),
                "no pod of job j was scheduled within 60 s (no pod was created)"
            );
            apiserver.await.unwrap();
        }
    }
}
