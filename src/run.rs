//! One run, as SPEC §5 lists its steps: plan, guard, launch, wait, stream, settle, clean up, map.
//! Every failure becomes a [`RunResult`] with an error code; nothing here returns `Err` to JS.

use std::future::Future;
use std::time::Duration;

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
        RunResult {
            error_code: Some(f.code.as_str().to_owned()),
            error_message: Some(f.message),
            ..RunResult::default()
        }
    }
}

/// How the streaming loop ended.
#[derive(Debug)]
enum Verdict {
    /// The wrapper printed Claude's exit code: the CLI is done.
    Exited(i32),
    /// The Job ended (or vanished) first.
    JobEnded(JobEnd),
    /// `timeoutSec + graceSec` passed.
    DeadlinePassed,
    /// Paperclip cancelled the run.
    Cancelled,
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
    let (job_name, pod, mut cleanup) = match decision {
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
            match await_pod(sink, &apis, &job_name, cancel).await {
                Ok(Some(pod)) => (job_name, pod, cleanup),
                Ok(None) => return Ok(settle_cancelled(cleanup).await),
                Err(failure) => {
                    cleanup_quietly(cleanup, &config).await;
                    return Err(failure);
                }
            }
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
            (job_name, pod, cleanup)
        }
    };

    // 4. Stream Claude's output until the CLI exits, the Job ends, time runs out or Paperclip cancels.
    let mut transcript = Transcript::new();
    let verdict = stream(
        sink,
        &apis,
        &job_name,
        &pod,
        &config,
        cancel,
        &mut transcript,
    )
    .await?;

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
        Verdict::Exited(code) => end.exit_code = Some(code),
        Verdict::Cancelled => return Ok(settle_cancelled(cleanup).await),
        Verdict::DeadlinePassed => end.timed_out = true,
        Verdict::JobEnded(JobEnd::Vanished { detected_how, at }) => {
            end.job_vanished = Some(format!("{detected_how} at {at}"));
        }
        Verdict::JobEnded(job_end) => {
            end.timed_out = job_end.is_deadline_exceeded();
            if let Ok(exit) = job_watch::read_exit(&apis.pods, &pod, CLAUDE_CONTAINER).await {
                end.exit_code = Some(exit.exit_code);
                end.termination_reason = exit.reason;
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

/// Step 8: the pod's progress, one stdout line per change. `None` when Paperclip cancelled.
async fn await_pod<S: Sink>(
    sink: &S,
    apis: &Apis,
    job_name: &str,
    cancel: &CancellationToken,
) -> Result<Option<String>, Failure> {
    let mut progress = pod_wait::await_pod_started(apis.pods.clone(), job_name, Budgets::default());
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            next = progress.next() => match next {
                Some(Ok(Progress::Status(line))) => sink.on_log(LogStream::Stdout, format!("{line}\n")).await?,
                Some(Ok(Progress::Started(pod))) => return Ok(Some(pod.metadata.name.unwrap_or_default())),
                Some(Err(err)) => return Err(Failure::of(ErrorCode::PodScheduleFailed, &err)),
                None => return Err(Failure::new(ErrorCode::PodScheduleFailed, format!("watching the pods of Job {job_name} ended before one started"))),
            },
        }
    }
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

/// Steps 9–11: every line of the `claude` container to `onLog` exactly once, until a verdict.
async fn stream<S: Sink>(
    sink: &S,
    apis: &Apis,
    job_name: &str,
    pod: &str,
    config: &Config,
    cancel: &CancellationToken,
    transcript: &mut Transcript,
) -> Result<Verdict, Failure> {
    let params = FollowParams {
        container: CLAUDE_CONTAINER.to_owned(),
        limit_bytes_per_request: None,
    };
    let mut lines = logs::follow(apis.pods.clone(), pod.to_owned(), params);
    let mut job_end = std::pin::pin!(job_watch::await_job_end(
        apis.jobs.clone(),
        job_name.to_owned()
    ));
    let deadline = (config.timeout_sec > 0)
        .then(|| Instant::now() + Duration::from_secs(config.timeout_sec + config.grace_sec));
    let mut keepalive = Instant::now() + KEEPALIVE_AFTER;
    let mut ended: Option<JobEnd> = None;
    let mut drain_until = keepalive;
    let mut logs_open = true;
    loop {
        if let (Some(end), false) = (&ended, logs_open) {
            return Ok(Verdict::JobEnded(end.clone()));
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(Verdict::Cancelled),
            next = lines.next(), if logs_open => match next {
                Some(Ok(line)) => {
                    let exited = manifest::exit_marker(&line.text);
                    if exited.is_none() {
                        transcript.observe_line(&line.text);
                    }
                    let mut chunk = line.text;
                    chunk.push('\n');
                    sink.on_log(LogStream::Stdout, chunk).await?;
                    keepalive = Instant::now() + KEEPALIVE_AFTER;
                    if let Some(code) = exited {
                        return Ok(Verdict::Exited(code));
                    }
                }
                Some(Err(err)) => {
                    sink.on_log(LogStream::Stderr, format!("[claude_k8s] {}\n", chain(&err))).await?;
                    logs_open = false;
                }
                None => logs_open = false,
            },
            end = &mut job_end, if ended.is_none() => {
                ended = Some(end);
                drain_until = Instant::now() + LOG_DRAIN_GRACE;
            }
            () = sleep_until(drain_until), if ended.is_some() => {
                if let Some(end) = ended { return Ok(Verdict::JobEnded(end)); }
            }
            () = sleep_until(deadline.unwrap_or(keepalive)), if deadline.is_some() => return Ok(Verdict::DeadlinePassed),
            () = sleep_until(keepalive) => {
                sink.on_log(LogStream::Stdout, format!("[claude_k8s] still running (Job {job_name}, no output for {} s)\n", KEEPALIVE_AFTER.as_secs())).await?;
                keepalive = Instant::now() + KEEPALIVE_AFTER;
            }
        }
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
    RunResult {
        error_code: Some(ErrorCode::Cancelled.as_str().to_owned()),
        error_message: Some(message),
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
