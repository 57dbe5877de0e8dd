//! Real-cluster tests of the pod wait, the log follower and the Job watch against the testbed
//! (`testbed/up`; kubeconfig from `$KUBECONFIG`, else the testbed's admin one). Each test creates
//! and deletes its own namespace. Run: `cargo test --test cluster_stream -- --ignored`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use paperclip_claude_k8s::cluster::job_watch::{self, Detection, JobEnd};
use paperclip_claude_k8s::cluster::logs::{self, FollowParams};
use paperclip_claude_k8s::cluster::pod_wait::{
    self, Budgets, PodState, Progress, CLAUDE_CONTAINER,
};
use serde_json::{json, Value};

/// Where `testbed/up` writes the admin kubeconfig.
const TESTBED_KUBECONFIG: &str = "/var/tmp/paperclip-claude-k8s-testbed/run/admin.kubeconfig";
/// Bounds each test so a hang fails it instead of blocking the suite; not a speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(300);
/// Budgets long enough that a failure the tests expect must come from the diagnosis, not a budget.
const PATIENT: Budgets = Budgets {
    schedule: Duration::from_secs(120),
    start: Duration::from_secs(120),
    unschedulable_grace: Duration::from_secs(2),
};

async fn client() -> Client {
    let path = std::env::var("KUBECONFIG").unwrap_or_else(|_| TESTBED_KUBECONFIG.to_owned());
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("no testbed kubeconfig at {path}: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A namespace of one test, deleted when dropped (even when the test fails).
struct TestNamespace {
    client: Client,
    name: String,
}

impl TestNamespace {
    async fn create(tag: &str) -> Self {
        let client = client().await;
        let name = format!(
            "stream-{tag}-{}",
            jiff::Timestamp::now().as_millisecond() % 1_000_000
        );
        let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        Self { client, name }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    async fn create_job(&self, job: Value) {
        let job: Job = serde_json::from_value(job).unwrap();
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .unwrap();
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop cannot await, and the test's runtime may be blocked on this very thread: delete from
        // a thread with its own runtime and client.
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    Api::<Namespace>::all(client().await)
                        .delete(&name, &DeleteParams::background())
                        .await
                        .map(|_| ())
                })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete the test namespace: {deleted:?}");
        }
    }
}

/// A Job running `script` in busybox as container `claude`, never retried.
///
/// NB: on the testbed (containerd 1.6 from Debian), a container that exits right after writing a
/// burst of output loses the tail of it in the runtime: `seq 1 100000` as the whole command leaves
/// about 85,000 lines in the kubelet's log file. Scripts that test the follower on big outputs
/// therefore `sleep 1` before exiting, so what they check is the follower, not that loss.
fn job(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": CLAUDE_CONTAINER,
                    "image": "busybox:1.36",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                }],
            }},
        },
    })
}

/// Runs the pod wait to its end: the status lines it yielded and how it ended.
async fn wait_started(
    pods: &Api<Pod>,
    job: &str,
    budgets: Budgets,
) -> (Vec<String>, pod_wait::Result<Pod>) {
    let mut progress = pod_wait::await_pod_started(pods.clone(), job, budgets);
    let mut lines = Vec::new();
    while let Some(item) = progress.next().await {
        match item {
            Ok(Progress::Status(line)) => lines.push(line),
            Ok(Progress::Started(pod)) => return (lines, Ok(*pod)),
            Err(err) => return (lines, Err(err)),
        }
    }
    panic!("the pod wait ended without a verdict; status lines: {lines:?}");
}

async fn started_pod(ns: &TestNamespace, job: &str) -> String {
    let (lines, started) = wait_started(&ns.pods(), job, PATIENT).await;
    let pod = started.unwrap_or_else(|e| panic!("pod did not start: {e}; status lines: {lines:?}"));
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("[claude_k8s] pod ")),
        "{lines:?}"
    );
    pod.metadata.name.unwrap()
}

async fn follow_all(
    ns: &TestNamespace,
    pod: String,
    limit_bytes_per_request: Option<i64>,
) -> Vec<String> {
    let params = FollowParams {
        container: CLAUDE_CONTAINER.into(),
        limit_bytes_per_request,
    };
    logs::follow(ns.pods(), pod, params)
        .map_ok(|line| line.text)
        .try_collect()
        .await
        .unwrap()
}

fn assert_numbered(lines: &[String], count: usize) {
    if let Some((i, line)) = lines
        .iter()
        .enumerate()
        .find(|(i, line)| **line != (i + 1).to_string())
    {
        panic!(
            "line {} is {line:?}, expected {}; {} lines in all",
            i + 1,
            i + 1,
            lines.len()
        );
    }
    assert_eq!(lines.len(), count);
}

async fn guarded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, test)
        .await
        .expect("test hung")
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn follows_100k_lines_in_order_exactly_once() {
    guarded(async {
        let ns = TestNamespace::create("lines").await;
        ns.create_job(job("lines", "seq 1 100000; sleep 1")).await;
        let pod = started_pod(&ns, "lines").await;
        assert_numbered(&follow_all(&ns, pod, None).await, 100_000);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn resumes_cut_streams_without_losing_or_repeating_a_line() {
    // 100,000 lines with timestamps are about 3.8 MB, so requests limited to 1 MiB each are cut
    // at least three times, mid-line, while the container still writes (500 lines every 50 ms).
    const LIMIT: i64 = 1024 * 1024;
    guarded(async {
        let ns = TestNamespace::create("cut").await;
        let script = "i=0; while [ $i -lt 100000 ]; do seq $((i+1)) $((i+500)); i=$((i+500)); sleep 0.05; done";
        ns.create_job(job("cut", script)).await;
        let pod = started_pod(&ns, "cut").await;
        let lines = follow_all(&ns, pod, Some(LIMIT)).await;
        assert_numbered(&lines, 100_000);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn delivers_a_100_kib_line_as_written_despite_the_runtime_splitting_it() {
    guarded(async {
        let ns = TestNamespace::create("long").await;
        let script = "echo first; head -c 102400 /dev/zero | tr '\\0' x; echo; echo last; sleep 1";
        ns.create_job(job("long", script)).await;
        let pod = started_pod(&ns, "long").await;
        let lines = follow_all(&ns, pod, None).await;
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!((lines[0].as_str(), lines[2].as_str()), ("first", "last"));
        assert!(
            lines[1] == "x".repeat(102_400),
            "long line of {} bytes differs",
            lines[1].len()
        );
    })
    .await;
}

async fn expect_cannot_start(tag: &str, edit: impl FnOnce(&mut Value)) -> (Vec<String>, PodState) {
    let ns = TestNamespace::create(tag).await;
    let mut spec = job(tag, "echo never");
    edit(&mut spec["spec"]["template"]["spec"]);
    ns.create_job(spec).await;
    let (lines, started) = wait_started(&ns.pods(), tag, PATIENT).await;
    match started {
        Err(pod_wait::Error::CannotStart { state, .. }) => (lines, state),
        other => panic!("expected CannotStart, got {other:?}; status lines: {lines:?}"),
    }
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn pod_wait_fails_an_unschedulable_pod_with_the_scheduler_message() {
    guarded(async {
        let (lines, state) = expect_cannot_start("unsched", |spec| {
            spec["nodeSelector"] = json!({"paperclip.io/no-such-node": "true"})
        })
        .await;
        let PodState::Unschedulable { message } = state else {
            panic!("{state:?}")
        };
        assert!(message.contains("0/1 nodes are available"), "{message}");
        assert!(
            lines.iter().any(|l| l.contains("Unschedulable")),
            "{lines:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn pod_wait_fails_a_missing_image() {
    guarded(async {
        let (_, state) = expect_cannot_start("noimage", |spec| {
            spec["containers"][0]["image"] = json!("localhost/paperclip-does-not-exist:1");
        })
        .await;
        let PodState::ImagePullFailed {
            container,
            reason,
            message,
        } = state
        else {
            panic!("{state:?}")
        };
        assert_eq!(container, CLAUDE_CONTAINER);
        assert!(
            reason == "ErrImagePull" || reason == "ImagePullBackOff",
            "{reason}"
        );
        assert!(message.is_some_and(|m| m.contains("paperclip-does-not-exist")));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn pod_wait_fails_an_image_that_cannot_be_pulled_with_pull_policy_always() {
    guarded(async {
        let (_, state) =
            expect_cannot_start("pullalways", |spec| spec["containers"][0]["imagePullPolicy"] = json!("Always")).await;
        assert!(matches!(&state, PodState::ImagePullFailed { container, .. } if container == CLAUDE_CONTAINER), "{state:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn pod_wait_fails_a_failing_init_container_with_its_exit_code() {
    guarded(async {
        let (lines, state) = expect_cannot_start("initfail", |spec| {
            spec["initContainers"] = json!([{
                "name": "prompt", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "exit 3"],
            }]);
        })
        .await;
        let PodState::InitContainerFailed {
            container,
            exit_code,
            ..
        } = state
        else {
            panic!("{state:?}")
        };
        assert_eq!((container.as_str(), exit_code), ("prompt", 3));
        assert!(
            lines
                .last()
                .unwrap()
                .contains("init container prompt failed with exit code 3"),
            "{lines:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn a_run_that_ends_at_once_is_followed_to_its_end_and_completes_with_exit_0() {
    guarded(async {
        let ns = TestNamespace::create("complete").await;
        ns.create_job(job("complete", "echo done")).await;
        let pod = started_pod(&ns, "complete").await;
        assert_eq!(follow_all(&ns, pod.clone(), None).await, ["done"]);
        assert_eq!(
            job_watch::await_job_end(ns.jobs(), "complete".into()).await,
            JobEnd::Complete
        );
        let exit = job_watch::read_exit(&ns.pods(), &pod, CLAUDE_CONTAINER)
            .await
            .unwrap();
        assert_eq!(
            (exit.exit_code, exit.reason.as_deref()),
            (0, Some("Completed"))
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn job_watch_sees_a_failed_job_and_the_exit_code_is_read() {
    guarded(async {
        let ns = TestNamespace::create("exit3").await;
        ns.create_job(job("exit3", "echo failing; exit 3")).await;
        let pod = started_pod(&ns, "exit3").await;
        let end = job_watch::await_job_end(ns.jobs(), "exit3".into()).await;
        assert!(
            matches!(&end, JobEnd::Failed { reason: Some(r), .. } if r == "BackoffLimitExceeded"),
            "{end:?}"
        );
        let exit = job_watch::read_exit(&ns.pods(), &pod, CLAUDE_CONTAINER)
            .await
            .unwrap();
        assert_eq!(exit.exit_code, 3);
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn job_watch_sees_the_deadline_exceeded() {
    guarded(async {
        let ns = TestNamespace::create("deadline").await;
        let mut spec = job("deadline", "sleep 30");
        spec["spec"]["activeDeadlineSeconds"] = json!(2);
        ns.create_job(spec).await;
        let end = job_watch::await_job_end(ns.jobs(), "deadline".into()).await;
        assert!(end.is_deadline_exceeded(), "{end:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn job_watch_sees_the_job_deleted() {
    guarded(async {
        let ns = TestNamespace::create("vanish").await;
        ns.create_job(job("vanish", "sleep 60")).await;
        started_pod(&ns, "vanish").await;
        let end = tokio::spawn(job_watch::await_job_end(ns.jobs(), "vanish".into()));
        ns.jobs()
            .delete("vanish", &DeleteParams::background())
            .await
            .unwrap();
        let end = end.await.unwrap();
        let detected_how = match end {
            JobEnd::Vanished { detected_how, .. } => detected_how,
            other => panic!("{other:?}"),
        };
        // The watch may start after the delete: then the list misses the Job.
        assert!(
            matches!(
                detected_how,
                Detection::DeleteEvent | Detection::MissingOnRelist
            ),
            "{detected_how:?}"
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn job_watch_reports_a_job_that_does_not_exist_as_vanished() {
    guarded(async {
        let ns = TestNamespace::create("missing").await;
        let end = job_watch::await_job_end(ns.jobs(), "never-created".into()).await;
        assert!(
            matches!(
                end,
                JobEnd::Vanished {
                    detected_how: Detection::MissingOnRelist,
                    ..
                }
            ),
            "{end:?}"
        );
    })
    .await;
}

/// Prints the follower's throughput on 50 MiB of stream-json-like lines (no assertion on speed:
/// the machine is shared). Reused by the benchmark.
#[tokio::test]
#[ignore = "needs cluster (creates a Job)"]
async fn measure_log_throughput() {
    const LINES: usize = 50 * 1024;
    guarded(async {
        let ns = TestNamespace::create("throughput").await;
        let filler = "x".repeat(900);
        let line = format!(
            r#"{{"type":"assistant","message":{{"id":"msg_01","content":[{{"type":"text","text":"{filler}"}}]}},"session_id":"5f0c"}}"#
        );
        ns.create_job(job("throughput", &format!("yes '{line}' | head -n {LINES}; sleep 1"))).await;
        let pod = started_pod(&ns, "throughput").await;
        let params = FollowParams { container: CLAUDE_CONTAINER.into(), limit_bytes_per_request: None };
        let started = std::time::Instant::now();
        let cpu_before = cpu_seconds();
        let expected = &line;
        let (count, bytes) = logs::follow(ns.pods(), pod, params)
            .try_fold((0usize, 0usize), |(count, bytes), line| async move {
                assert!(line.text == *expected, "line {count} differs: {:?}", line.text);
                Ok((count + 1, bytes + line.text.len() + 1))
            })
            .await
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        assert_eq!(count, LINES);
        let megabytes = bytes as f64 / 1e6;
        println!(
            "log throughput: {megabytes:.1} MB in {seconds:.2} s = {:.1} MB/s, {cpu:.2} s of CPU in this process",
            megabytes / seconds
        );
    })
    .await;
}

/// User plus system CPU time of this process so far (Linux `/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}
