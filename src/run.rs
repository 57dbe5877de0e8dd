//! One run, as SPEC §5 lists its steps: plan, guard, launch, wait, stream, settle, clean up, map.
//! Every failure becomes a [`RunResult`] with an error code; nothing here returns `Err` to JS.

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::Api;
use serde_json::json;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::cluster::cleanup::CleanupGuard;
use crate::cluster::guard::{GuardDecision, ThisRun};
use crate::cluster::job_watch::JobEnd;
use crate::cluster::logs::FollowParams;
use crate::cluster::pod_wait::{Budgets, Progress, CLAUDE_CONTAINER};
use crate::cluster::{cleanup, client, guard, job_watch, launch, logs, pod_wait};
use crate::error::{chain, ErrorCode};
use crate::plan::config::Config;
use crate::plan::env::{self, EnvInput};
use crate::plan::ids::{label_value, session_to_resume, RunIds};
use crate::plan::manifest::{self, Inherited, JobInput};
use crate::plan::prompt::build_prompt;
use crate::plan::RunRequest;
use crate::sink::{CallbackError, LogStream, Sink};
use crate::transcript::outcome::{Billing, RunEnd, RunResult, Transcript};

/// Paperclip's UI shows a run as stalled after a while without output; one line per this much
/// silence keeps it alive (SPEC §5 step 9).
const KEEPALIVE_AFTER: Duration = Duration::from_secs(15);

/// After a failed exit marker under a deadline, how long to wait for the Job's condition, which
/// tells a deadline's SIGTERM from any other failure.
const EXIT_SETTLE: Duration = Duration::from_secs(3);

/// After the Job ended without Claude's exit marker (killed, OOM, deleted), how long the log
/// stream may still deliver lines written before the end: the kubelet notices a finished
/// container within about a second.
const LOG_DRAIN_GRACE: Duration = Duration::from_secs(3);

/// A run that cannot go on, with the code Paperclip records.
#[derive(Debug)]
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn of(code: ErrorCode, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(code, chain(err))
    }
}

impl From<CallbackError> for Failure {
    fn from(e: CallbackError) -> Self {
        Self::new(ErrorCode::CallbackFailed, e.to_string())
    }
}

impl From<Failure> for RunResult {
    fn from(f: Failure) -> Self {
        if f.code == ErrorCode::Cancelled {
            return cancelled(f.message);
        }
        RunResult {
            error_code: Some(f.code.as_str().to_owned()),
            error_message: Some(f.message),
            ..RunResult::default()
        }
    }
}

/// How the run's loop ended.
#[derive(Debug)]
enum Verdict {
    /// The wrapper printed Claude's exit code: the CLI is done. `job_end` when the Job's end was
    /// seen too (it tells a deadline's SIGTERM from any other).
    Exited { code: i32, job_end: Option<JobEnd> },
    /// The Job ended (or vanished) without the exit marker.
    JobEnded(JobEnd),
    /// `timeoutSec + graceSec` passed.
    DeadlinePassed,
    /// Paperclip cancelled the run.
    Cancelled,
}

/// Where the loop starts: a Job just created, or an orphan's pod already running.
enum Start {
    Launched,
    Reattached(String),
}

/// The loop's verdict, and the pod it followed (none if no pod started).
struct Followed {
    verdict: Verdict,
    pod: Option<String>,
}

/// What the run decided before touching the cluster's Jobs.
#[derive(Clone, Copy)]
struct Plan<'a> {
    config: &'a Config,
    ids: &'a RunIds,
    /// The session `--resume` will name, if any.
    resume: Option<&'a str>,
    env: &'a [env::EnvVar],
    inherited: &'a Inherited,
    namespace: &'a str,
}

/// The Kubernetes APIs of one namespace.
struct Apis {
    jobs: Api<Job>,
    pods: Api<Pod>,
    secrets: Api<Secret>,
}

/// Runs Claude Code as a Kubernetes Job for one heartbeat and maps its transcript to a result.
///
/// Never fails: every failure the SPEC names, and every callback that throws, resolves as a
/// [`RunResult`] with `errorCode` and `errorMessage`. Cleanup runs before the result is returned;
/// if this future is dropped instead, a [`CleanupGuard`] deletes the Job in the background.
pub async fn execute<S: Sink>(req: RunRequest, sink: &S, cancel: CancellationToken) -> RunResult {
    run(&req, sink, &cancel)
        .await
        .unwrap_or_else(RunResult::from)
}

async fn run<S: Sink>(
    req: &RunRequest,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<RunResult, Failure> {
    // 1. Plan what needs no cluster; bad ids fail before any cluster call.
    let (config, warnings) = Config::parse(&req.config);
    for warning in &warnings {
        sink.on_log(LogStream::Stderr, format!("{warning}\n"))
            .await?;
    }
    let mut ids = RunIds::from_request(req).map_err(|e| Failure::of(e.code(), &e))?;
    let resume = session_to_resume(&req.runtime, &config.cwd);
    if let Some(note) = &resume.note {
        sink.on_log(LogStream::Stdout, format!("{note}\n")).await?;
    }
    ids.session = resume.session.and_then(label_value);

    // 2. Find the cluster, and the Paperclip pod when we run in one.
    let cluster = client::connect(config.kubeconfig.as_deref())
        .await
        .map_err(|e| Failure::of(e.code(), &e))?;
    let self_pod = unless_cancelled(cancel, async {
        cluster
            .self_pod()
            .await
            .map_err(|e| Failure::of(e.code(), &e))
    })
    .await?;
    let inherited = self_pod
        .as_deref()
        .map_or_else(Inherited::default, manifest::inherit_from_pod);
    let var = |name: &str| std::env::var(name).ok();
    let pod_ip = self_pod
        .as_deref()
        .and_then(|pod| pod.status.as_ref()?.pod_ip.clone());
    let api_url = match pod_ip {
        Some(ip) => env::pod_reachable_api_url(var, &ip),
        None => env::paperclip_api_url(var),
    };
    let env = env::build_env(
        req,
        &EnvInput {
            inherited_literal: &inherited.literal_env,
            inherited_value_from: &inherited.value_from_env,
            api_url: &api_url,
            config_env: &config.env,
        },
    );
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace().to_owned());
    let client = cluster.client().clone();
    let apis = Apis {
        jobs: Api::namespaced(client.clone(), &namespace),
        pods: Api::namespaced(client.clone(), &namespace),
        secrets: Api::namespaced(client, &namespace),
    };

    // 3. Concurrency guard, serialised per agent until our Job exists.
    let turn = guard::lock_agent(&req.agent.id).await;
    let this = ThisRun {
        run_id: ids.run.clone(),
        task_id: ids.task.clone(),
        session_id: ids.session.clone(),
        reattach_orphaned_jobs: config.reattach_orphaned_jobs,
    };
    let selector = ids.agent_selector();
    let decision = guard::check(&apis.jobs, &selector, &this);
    let decision = unless_cancelled(cancel, async {
        decision.await.map_err(|e| Failure::of(e.code(), &e))
    })
    .await?;
    let (job_name, start, mut cleanup) = match decision {
        GuardDecision::Block(code, message) => return Err(Failure::new(code, message)),
        GuardDecision::Proceed => {
            let plan = Plan {
                config: &config,
                ids: &ids,
                resume: resume.session,
                env: &env,
                inherited: &inherited,
                namespace: &namespace,
            };
            let launched = launch_job(req, sink, &plan, &apis);
            let (job_name, cleanup) = unless_cancelled(cancel, launched).await?;
            drop(turn);
            (job_name, Start::Launched, cleanup)
        }
        GuardDecision::Reattach(job) => {
            let (job_name, pod) = reattach(sink, &apis, &job, &ids).await?;
            drop(turn);
            let cleanup = CleanupGuard::new(
                apis.jobs.clone(),
                apis.secrets.clone(),
                Some(job_name.clone()),
                Vec::new(),
            );
            (job_name, Start::Reattached(pod), cleanup)
        }
    };

    // 4. Follow the pod until the CLI exits, the Job ends, time runs out or Paperclip cancels.
    let mut transcript = Transcript::new();
    let followed = follow_run(
        sink,
        &apis,
        &job_name,
        start,
        &config,
        cancel,
        &mut transcript,
    )
    .await;
    let Followed { verdict, pod } = match followed {
        Ok(followed) => followed,
        Err(failure) => {
            cleanup_quietly(cleanup, &config).await;
            return Err(failure);
        }
    };

    // 5. Settle: exit code, cleanup, result.
    let mut end = RunEnd {
        current_session_id: resume.session.map(str::to_owned),
        billing: Billing::detect(|name| env::lookup(&env, name)),
        now: Some(jiff::Timestamp::now()),
        config_model: config.model.clone(),
        cwd: config.cwd.clone(),
        timeout_sec: config.timeout_sec,
        workspace: env::Workspace::from_context(&req.context),
        ..RunEnd::default()
    };
    match verdict {
        Verdict::Exited { code, job_end } => {
            end.exit_code = Some(code);
            end.timed_out = job_end.is_some_and(|end| end.is_deadline_exceeded());
        }
        Verdict::Cancelled => return Ok(settle_cancelled(cleanup).await),
        Verdict::DeadlinePassed => end.timed_out = true,
        Verdict::JobEnded(JobEnd::Vanished { detected_how, at }) => {
            end.job_vanished = Some(format!("{detected_how} at {at}"));
        }
        Verdict::JobEnded(job_end) => {
            end.timed_out = job_end.is_deadline_exceeded();
            if let Some(pod) = &pod {
                if let Ok(exit) = job_watch::read_exit(&apis.pods, pod, CLAUDE_CONTAINER).await {
                    end.exit_code = Some(exit.exit_code);
                    end.termination_reason = exit.reason;
                }
            }
        }
    }
    if config.retain_jobs && !end.timed_out {
        cleanup.disarm();
    } else if let Err(err) = clean_up(&mut cleanup).await {
        sink.on_log(
            LogStream::Stderr,
            format!("[claude_k8s] cleanup of Job {job_name} failed: {err}\n"),
        )
        .await?;
    }
    Ok(transcript.finish(end))
}

/// Steps 4–7: prompt, manifests, `onMeta`, create. Returns the Job's name and an armed cleanup.
async fn launch_job<S: Sink>(
    req: &RunRequest,
    sink: &S,
    plan: &Plan<'_>,
    apis: &Apis,
) -> Result<(String, CleanupGuard), Failure> {
    let Plan {
        config,
        ids,
        resume,
        env,
        inherited,
        namespace,
    } = *plan;
    let prompt = build_prompt(req, config, resume.is_some());
    let image = manifest::image(config, inherited).map_err(|e| Failure::of(e.code(), &e))?;
    let mut labels = config.labels.clone();
    labels.extend(ids.labels());
    let (container_env, secret_env) = manifest::container_env(env, &ids.secret_name(0));
    let secrets =
        manifest::build_secrets(&ids.job_name, namespace, &labels, &secret_env, &prompt.text)
            .map_err(|e| Failure::of(e.code(), &e))?;
    let args = manifest::claude_args(
        config,
        resume,
        config.instructions_file_path.as_deref(),
        &bundle_dirs(&req.config),
    );
    let job = manifest::build_job(&JobInput {
        name: &ids.job_name,
        namespace,
        labels: &labels,
        image,
        init_image: manifest::DEFAULT_INIT_IMAGE,
        args: args.clone(),
        cwd: &config.cwd,
        env: container_env,
        prompt_parts: secrets.len(),
        config,
        inherited,
    });

    if let Some(notes) = manifest::workspace_note(config, inherited) {
        sink.on_log(LogStream::Stderr, format!("[claude_k8s] {notes}\n"))
            .await?;
    }
    sink.on_meta(json!({
        "adapterType": "claude_k8s",
        "command": "claude",
        "cwd": namespace,
        "commandArgs": args,
        "commandNotes": [
            format!("image: {image}"),
            format!("namespace: {namespace}"),
            format!("job: {}", ids.job_name),
            format!("working directory: {}", config.cwd),
            if config.timeout_sec > 0 { format!("timeout: {} s (+{} s grace)", config.timeout_sec, config.grace_sec) } else { "timeout: none".to_owned() },
        ],
        "env": env::redacted(env),
        "prompt": prompt.text,
        "promptMetrics": prompt.metrics,
        "context": req.context,
    }))
    .await?;

    let names: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    sink.on_dispatch().await?;
    let launched = timeout(
        launch::LAUNCH_TIMEOUT,
        launch::launch(&apis.secrets, &apis.jobs, job, secrets),
    )
    .await;
    match launched {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Failure::of(e.code(), &e)),
        Err(_) => {
            let message = format!(
                "creating Job {} took longer than {} s; nothing was left behind",
                ids.job_name,
                launch::LAUNCH_TIMEOUT.as_secs()
            );
            return Err(Failure::new(ErrorCode::JobCreateFailed, message));
        }
    }
    let cleanup = CleanupGuard::new(
        apis.jobs.clone(),
        apis.secrets.clone(),
        Some(ids.job_name.clone()),
        names,
    );
    Ok((ids.job_name.clone(), cleanup))
}

/// `--add-dir` for the skills bundle that `index.js` materialised on the shared volume
/// (`paperclipBundleDir`, an absolute pod path set by the adapter itself, not by users).
fn bundle_dirs(config: &serde_json::Value) -> Vec<String> {
    config
        .get("paperclipBundleDir")
        .and_then(serde_json::Value::as_str)
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| vec![dir.to_owned()])
        .unwrap_or_default()
}

/// SPEC §6 reattach: take over an orphan's Job and follow its pod's log from the start.
async fn reattach<S: Sink>(
    sink: &S,
    apis: &Apis,
    job: &Job,
    ids: &RunIds,
) -> Result<(String, String), Failure> {
    let relabelled = guard::relabel_for_reattach(&apis.jobs, job, &ids.run, ids.session.as_deref())
        .await
        .map_err(|e| Failure::of(e.code(), &e))?;
    let job_name = relabelled.metadata.name.unwrap_or_default();
    let pods = apis
        .pods
        .list(&ListParams::default().labels(&format!("job-name={job_name}")))
        .await
        .map_err(|e| Failure::of(ErrorCode::PodReattachFailed, &e))?;
    let pod = pods
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::PodReattachFailed,
                format!("Job {job_name} has no pod to reattach to"),
            )
        })?;
    sink.on_log(LogStream::Stdout, format!("[claude_k8s] reattached to running Job {job_name} (pod {pod}) left by an earlier run\n")).await?;
    Ok((job_name, pod))
}

/// Steps 8–11 in one loop: the pod's progress (one stdout line per change), then every line of
/// the `claude` container to `onLog` exactly once, until a verdict. The Job's end, the deadline and
/// a cancel are watched from the Job's creation on, so none of them waits for the pod.
async fn follow_run<S: Sink>(
    sink: &S,
    apis: &Apis,
    job_name: &str,
    start: Start,
    config: &Config,
    cancel: &CancellationToken,
    transcript: &mut Transcript,
) -> Result<Followed, Failure> {
    let follow = |pod: &str| {
        let params = FollowParams {
            container: CLAUDE_CONTAINER.to_owned(),
            limit_bytes_per_request: None,
        };
        logs::read_ahead(
            logs::follow(apis.pods.clone(), pod.to_owned(), params),
            logs::READ_AHEAD_BYTES,
        )
    };
    let (mut progress, mut pod) = match start {
        Start::Launched => {
            let progress =
                pod_wait::await_pod_started(apis.pods.clone(), job_name, Budgets::default());
            (Some(progress), None)
        }
        Start::Reattached(pod) => (None, Some(pod)),
    };
    let mut lines = pod.as_deref().map(follow);
    let mut job_end = std::pin::pin!(job_watch::await_job_end(
        apis.jobs.clone(),
        job_name.to_owned()
    ));
    let deadline = (config.timeout_sec > 0)
        .then(|| Instant::now() + Duration::from_secs(config.timeout_sec + config.grace_sec));
    let mut keepalive = Instant::now() + KEEPALIVE_AFTER;
    let mut ended: Option<JobEnd> = None;
    let mut exited: Option<i32> = None;
    let mut settle_by = keepalive;
    let mut logs_open = true;
    let verdict = loop {
        if let Some(end) = &ended {
            if lines.is_none() || !logs_open {
                break match exited {
                    Some(code) => Verdict::Exited {
                        code,
                        job_end: Some(end.clone()),
                    },
                    None => Verdict::JobEnded(end.clone()),
                };
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Verdict::Cancelled,
            next = next_of(&mut progress) => match next {
                Some(Ok(Progress::Status(line))) => {
                    sink.on_log(LogStream::Stdout, format!("{line}\n")).await?;
                    keepalive = Instant::now() + KEEPALIVE_AFTER;
                }
                Some(Ok(Progress::Started(started))) => {
                    let name = started.metadata.name.unwrap_or_default();
                    lines = Some(follow(&name));
                    pod = Some(name);
                    progress = None;
                }
                Some(Err(err)) => return Err(Failure::of(ErrorCode::PodScheduleFailed, &err)),
                None => {
                    let message = format!("watching the pods of Job {job_name} ended before one started");
                    return Err(Failure::new(ErrorCode::PodScheduleFailed, message));
                }
            },
            batch = next_batch_of(&mut lines), if logs_open => match batch {
                Some(batch) => {
                    let delivered = deliver(sink, batch, transcript).await?;
                    keepalive = Instant::now() + KEEPALIVE_AFTER;
                    if let Some(err) = delivered.error {
                        sink.on_log(LogStream::Stderr, format!("[claude_k8s] {}\n", chain(&err))).await?;
                        logs_open = false;
                    }
                    match delivered.exit_code {
                        // A failed exit under a deadline may be the deadline's SIGTERM: let the
                        // Job's condition say so before settling.
                        Some(code) if code != 0 && deadline.is_some() && ended.is_none() => {
                            exited = Some(code);
                            logs_open = false;
                            settle_by = Instant::now() + EXIT_SETTLE;
                        }
                        Some(code) => break Verdict::Exited { code, job_end: ended },
                        None => {}
                    }
                }
                None => logs_open = false,
            },
            end = &mut job_end, if ended.is_none() => {
                ended = Some(end);
                if exited.is_none() {
                    settle_by = Instant::now() + LOG_DRAIN_GRACE;
                }
            }
            () = sleep_until(settle_by), if ended.is_some() || exited.is_some() => {
                break match (exited, ended) {
                    (Some(code), job_end) => Verdict::Exited { code, job_end },
                    (None, Some(end)) => Verdict::JobEnded(end),
                    (None, None) => unreachable!("guarded by the branch condition"),
                };
            }
            () = sleep_until(deadline.unwrap_or(keepalive)), if deadline.is_some() && exited.is_none() => {
                break Verdict::DeadlinePassed;
            }
            () = sleep_until(keepalive) => {
                let line = format!("[claude_k8s] still running (Job {job_name}, no output for {} s)\n", KEEPALIVE_AFTER.as_secs());
                sink.on_log(LogStream::Stdout, line).await?;
                keepalive = Instant::now() + KEEPALIVE_AFTER;
            }
        }
    };
    Ok(Followed { verdict, pod })
}

/// What one batch of log lines held besides lines.
struct Delivered {
    /// The exit marker's code, when the batch ended with it.
    exit_code: Option<i32>,
    /// The follower's error, when the batch ended with one.
    error: Option<logs::Error>,
}

/// Hands a batch of lines to `onLog` as one chunk, in order, each line also to the transcript.
async fn deliver<S: Sink>(
    sink: &S,
    batch: logs::Batch,
    transcript: &mut Transcript,
) -> Result<Delivered, Failure> {
    let mut chunk = String::new();
    let mut delivered = Delivered {
        exit_code: None,
        error: None,
    };
    for item in batch.items {
        match item {
            Ok(line) => {
                delivered.exit_code = manifest::exit_marker(&line.text);
                if delivered.exit_code.is_none() {
                    transcript.observe_line(&line.text);
                }
                chunk.push_str(&line.text);
                chunk.push('\n');
                if delivered.exit_code.is_some() {
                    break;
                }
            }
            Err(err) => {
                delivered.error = Some(err);
                break;
            }
        }
    }
    if !chunk.is_empty() {
        sink.on_log(LogStream::Stdout, chunk).await?;
    }
    Ok(delivered)
}

/// The next batch of a log being read, if one is; never ready while none is.
async fn next_batch_of(lines: &mut Option<logs::ReadAhead>) -> Option<logs::Batch> {
    match lines {
        Some(lines) => lines.next_batch().await,
        None => std::future::pending().await,
    }
}

/// The next item of an optional stream; never ready while there is none.
async fn next_of<T>(stream: &mut Option<BoxStream<'static, T>>) -> Option<T> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Runs a step that creates nothing yet (or undoes itself when dropped) unless Paperclip cancels
/// first: a hung apiserver must not keep a cancelled run from ending `cancelled`.
async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    step: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(Failure::new(ErrorCode::Cancelled, "run cancelled by Paperclip before its Job was created")),
        result = step => result,
    }
}

/// Deletes the Job and its Secrets, bounded by [`cleanup::CLEANUP_TIMEOUT`].
async fn clean_up(cleanup: &mut CleanupGuard) -> Result<(), String> {
    match timeout(cleanup::CLEANUP_TIMEOUT, cleanup.cleanup()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(chain(&err)),
        Err(_) => Err(format!(
            "no answer within {} s",
            cleanup::CLEANUP_TIMEOUT.as_secs()
        )),
    }
}

/// Step 11: the Job is deleted at once (background propagation) and the run ends `cancelled`.
async fn settle_cancelled(mut cleanup: CleanupGuard) -> RunResult {
    let message = match clean_up(&mut cleanup).await {
        Ok(()) => "run cancelled by Paperclip; the Job was deleted".to_owned(),
        Err(err) => format!("run cancelled by Paperclip; deleting the Job failed: {err}"),
    };
    cancelled(message)
}

/// A `cancelled` result. NB: Paperclip 2026.916.1 answers the cancel request 409 unless the result
/// acknowledges that the provider stopped (docs/paperclip-server.md, "Cancellation").
fn cancelled(message: String) -> RunResult {
    let acknowledged = json!({"executionCancellation": {
        "state": "acknowledged",
        "acknowledgedAt": jiff::Timestamp::now().to_string(),
        "forced": false,
    }});
    RunResult {
        error_code: Some(ErrorCode::Cancelled.as_str().to_owned()),
        error_message: Some(message),
        result_json: Some(acknowledged),
        ..RunResult::default()
    }
}

/// Cleanup after a failure that already has its message: a failed delete is only logged.
async fn cleanup_quietly(mut cleanup: CleanupGuard, config: &Config) {
    if config.retain_jobs {
        cleanup.disarm();
    } else if let Err(err) = clean_up(&mut cleanup).await {
        tracing::warn!(error = %err, "cleanup after a failed start failed");
    }
}
