//! Follows one container's log through `pods/log`, line by line, each line exactly once even when
//! the stream drops and is resumed. It never decides when a run ends: the Job's condition does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::io::{AsyncBufRead, AsyncBufReadExt};
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::wait::await_condition;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::AbortOnDropHandle;

/// First pause before reconnecting a dropped log stream; short, because a drop is usually a single
/// proxy or apiserver hiccup and every millisecond here is lag the user sees.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two reconnect attempts while the apiserver keeps failing.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Reconnect attempts in a row, without a line delivered in between, before the follower gives up:
/// about two minutes with the delays above, enough to ride out an apiserver restart. The run's own
/// deadline still bounds the whole run.
const RECONNECT_MAX_ATTEMPTS: usize = 30;
/// How long a cleanly ended stream waits for the pod's status to show the container terminated.
/// The kubelet closes a follow stream as soon as the runtime says the container stopped, but the
/// pod status reaches the apiserver only after the kubelet's next relist (about 1 s) and status
/// sync; if the container still looks running after this, the stream was cut: reconnect.
const EOF_SETTLE: Duration = Duration::from_secs(3);
/// The longest piece of a line the container runtime writes as one log entry: containerd's default
/// `max_container_log_line_size`. Longer lines are split into "partial" entries, and with
/// `timestamps=true` the kubelet prefixes every piece with its own timestamp, so a 100 KiB line
/// arrives as `ts1 <16 KiB>ts2 <16 KiB>...`; the follower strips those inner prefixes.
const CRI_CHUNK_BYTES: usize = 16 * 1024;
/// Longest RFC 3339 timestamp the kubelet writes (`2006-01-02T15:04:05.999999999Z07:00`).
const MAX_TIMESTAMP_LEN: usize = 35;

/// One line of the container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line as the container wrote it, without the kubelet's timestamp or the trailing newline
    /// (invalid UTF-8 is replaced by U+FFFD).
    pub text: String,
    /// When the runtime logged the line (its last piece, for a line split into pieces).
    pub timestamp: Timestamp,
}

/// What to follow, and how.
#[derive(Debug, Clone)]
pub struct FollowParams {
    /// The container whose log to follow (`claude` for a run).
    pub container: String,
    /// Passed as `limitBytes` on every request, so each request ends after this many bytes and the
    /// follower resumes with a new one (a request that reached it counts as cut, not as the log's
    /// end). `None` in production; tests use it to cut streams on a real cluster.
    pub limit_bytes_per_request: Option<i64>,
}

/// The log could not be followed to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver refused or failed every reconnect attempt in a row.
    #[error("log stream of pod {pod} could not be resumed after {attempts} attempts")]
    Reconnect {
        /// The pod whose log was followed.
        pod: String,
        /// Attempts made.
        attempts: usize,
        /// The last request's failure, when a request failed (rather than a stream that ended
        /// without a new line).
        #[source]
        source: Option<kube::Error>,
    },
    /// The apiserver refuses this client the log (`401`/`403`): retrying cannot help.
    #[error("reading the log of pod {pod} is not allowed")]
    Refused {
        /// The pod whose log was followed.
        pod: String,
        /// The apiserver's answer.
        #[source]
        source: kube::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Follows `pod`'s log from the container's start until the container has terminated and every
/// line it wrote was yielded. A stream that ends while the container still runs, or fails, is
/// resumed with `sinceTime` and the replayed lines are dropped, so each line comes exactly once;
/// once the container has stopped, one last request (not following) reads what the follow stream
/// may have missed.
/// The follower reads only when polled, so a slow consumer slows the reading (no buffering beyond
/// the line being read). The stream also ends when the pod disappears.
///
/// # Errors
/// Yields (and ends with) [`Error::Refused`] at once when RBAC denies `pods/log`, and
/// [`Error::Reconnect`] when the apiserver cannot be reached for about two minutes.
pub fn follow(
    pods: Api<Pod>,
    pod: String,
    params: FollowParams,
) -> BoxStream<'static, Result<LogLine>> {
    let follower = Follower {
        pods,
        pod,
        params,
        phase: Phase::Following,
        reader: None,
        buf: Vec::new(),
        delivered: Delivered::default(),
        skip: Skip::default(),
        backoff: reconnect_backoff(),
        attempts: 0,
        pause: false,
        received: 0,
        progressed: false,
    };
    Box::pin(stream::try_unfold(follower, |mut follower| async move {
        Ok(follower.next_line().await?.map(|line| (line, follower)))
    }))
}

/// How many bytes of lines the follower may read ahead of a slow consumer: enough to keep reading
/// while the consumer hands a batch to Paperclip, small enough to bound memory.
pub const READ_AHEAD_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes of lines one [`ReadAhead::next_batch`] hands over (one `onLog` chunk).
pub const BATCH_BYTES: usize = 1024 * 1024;

/// A follower running in its own task, up to [`READ_AHEAD_BYTES`] ahead of its consumer, so reading
/// the log and delivering it overlap: a consumer that awaits each delivery (a hop to the JS thread
/// and back) no longer stalls the reading, and a kubelet log rotation is less likely to overtake
/// the reader. Memory stays bounded: the follower waits while the budget is used up.
pub struct ReadAhead {
    queue: mpsc::UnboundedReceiver<(Result<LogLine>, OwnedSemaphorePermit)>,
    _reader: AbortOnDropHandle<()>,
}

/// Lines taken from a [`ReadAhead`] in one go; their bytes count against the read-ahead budget
/// until the batch is dropped.
pub struct Batch {
    /// The lines, in order; an error, if any, is the last item.
    pub items: Vec<Result<LogLine>>,
    _budget: Vec<OwnedSemaphorePermit>,
}

/// Starts reading `lines` ahead of the consumer (see [`ReadAhead`]); must run inside tokio.
pub fn read_ahead(mut lines: BoxStream<'static, Result<LogLine>>, max_bytes: usize) -> ReadAhead {
    let budget = Arc::new(Semaphore::new(max_bytes));
    let (queue_tx, queue) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(item) = lines.next().await {
            let size = item
                .as_ref()
                .map_or(1, |line| line.text.len())
                .clamp(1, max_bytes);
            let Ok(permit) = Arc::clone(&budget).acquire_many_owned(size as u32).await else {
                break;
            };
            if queue_tx.send((item, permit)).is_err() {
                break;
            }
        }
    });
    ReadAhead {
        queue,
        _reader: AbortOnDropHandle::new(reader),
    }
}

impl ReadAhead {
    /// Waits for the next line, then takes every line already read, up to [`BATCH_BYTES`]. `None`
    /// once the follower has ended and everything was taken.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        let first = self.queue.recv().await?;
        let mut bytes = first.0.as_ref().map_or(0, |line| line.text.len());
        let (mut items, mut budget) = (vec![first.0], vec![first.1]);
        while bytes < BATCH_BYTES {
            let Ok((item, permit)) = self.queue.try_recv() else {
                break;
            };
            bytes += item.as_ref().map_or(0, |line| line.text.len());
            items.push(item);
            budget.push(permit);
        }
        Some(Batch {
            items,
            _budget: budget,
        })
    }
}

fn reconnect_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(RECONNECT_MIN_DELAY)
        .with_max_delay(RECONNECT_MAX_DELAY)
        .with_max_times(RECONNECT_MAX_ATTEMPTS)
        .build()
}

type Reader = Pin<Box<dyn AsyncBufRead + Send>>;

struct Follower {
    pods: Api<Pod>,
    pod: String,
    params: FollowParams,
    phase: Phase,
    reader: Option<Reader>,
    /// The raw line being read; reused, so reading allocates only the delivered `String`.
    buf: Vec<u8>,
    delivered: Delivered,
    skip: Skip,
    backoff: ExponentialBackoff,
    attempts: usize,
    /// Whether the next request waits for the next backoff delay first.
    pause: bool,
    /// Bytes read by the current request, to tell a `limitBytes` cut from the log's end.
    received: u64,
    /// Whether the current request delivered a new line.
    progressed: bool,
}

/// Where the follower is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Following the log while the container writes it.
    Following,
    /// The container has stopped: one last request, not following, reads the log to its end. The
    /// 1.20 kubelet ends a follow stream at the end of the file it has open when it sees the
    /// container stopped, even when the log was rotated meanwhile and the rest is in a new file.
    Draining,
    /// Every line was delivered.
    Finished,
}

impl Follower {
    async fn next_line(&mut self) -> Result<Option<LogLine>> {
        while !matches!(self.phase, Phase::Finished) {
            let Some(reader) = self.reader.as_mut() else {
                self.connect().await?;
                continue;
            };
            self.buf.clear();
            match reader.read_until(b'\n', &mut self.buf).await {
                Ok(n) if self.buf.last() == Some(&b'\n') => {
                    self.received += n as u64;
                    self.buf.pop();
                    if let Some(line) = self.accept() {
                        return Ok(Some(line));
                    }
                }
                Ok(n) => {
                    self.received += n as u64;
                    self.reader = None;
                    if let Some(line) = self.request_ended().await {
                        return Ok(Some(line));
                    }
                }
                Err(err) => {
                    tracing::debug!(pod = %self.pod, error = %err, "log stream failed; resuming");
                    self.reader = None;
                    self.pause = true;
                }
            }
        }
        Ok(None)
    }

    /// The current request ended cleanly, `buf` holding a last line without a newline, if any.
    /// Decides what comes next; returns that last line when it ends the log.
    async fn request_ended(&mut self) -> Option<LogLine> {
        let limit = self.params.limit_bytes_per_request;
        if limit.is_some_and(|limit| self.received >= limit.unsigned_abs()) {
            tracing::debug!(pod = %self.pod, "log request reached its byte limit; resuming");
            self.pause = !self.progressed;
            return None;
        }
        match self.phase {
            Phase::Following
                if container_done(&self.pods, &self.pod, &self.params.container).await =>
            {
                self.phase = Phase::Draining;
            }
            Phase::Following => {
                tracing::debug!(pod = %self.pod, "log stream ended while the container runs; resuming");
                self.pause = true;
            }
            Phase::Draining => {
                self.phase = Phase::Finished;
                if !self.buf.is_empty() {
                    return self.accept();
                }
            }
            Phase::Finished => {}
        }
        None
    }

    /// Parses the line in `buf`, drops it if it replays one already delivered, records it otherwise.
    fn accept(&mut self) -> Option<LogLine> {
        let fallback = self.delivered.max.unwrap_or(Timestamp::UNIX_EPOCH);
        let line = parse_line(&self.buf, fallback);
        if self.skip.replayed(line.timestamp) {
            return None;
        }
        self.delivered.record(line.timestamp);
        self.backoff = reconnect_backoff();
        self.attempts = 0;
        self.progressed = true;
        Some(line)
    }

    /// Opens a (new) log request, resuming after the last delivered line: following while the
    /// container runs, else reading to the end once. After a failure, pauses first, with delays
    /// that grow while nothing gets delivered.
    async fn connect(&mut self) -> Result<()> {
        let mut last_error = None;
        loop {
            if self.pause {
                self.attempts += 1;
                let Some(delay) = self.backoff.next() else {
                    return Err(Error::Reconnect {
                        pod: self.pod.clone(),
                        attempts: self.attempts,
                        source: last_error,
                    });
                };
                tokio::time::sleep(delay).await;
            }
            self.skip = self.delivered.replay();
            let params = LogParams {
                container: Some(self.params.container.clone()),
                follow: matches!(self.phase, Phase::Following),
                timestamps: true,
                since_time: self.delivered.resume_from(),
                limit_bytes: self.params.limit_bytes_per_request,
                ..LogParams::default()
            };
            match self.pods.log_stream(&self.pod, &params).await {
                Ok(reader) => {
                    self.reader = Some(Box::pin(reader));
                    self.received = 0;
                    self.progressed = false;
                    self.pause = false;
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    tracing::debug!(pod = %self.pod, "pod gone; its log is over");
                    self.phase = Phase::Finished;
                    return Ok(());
                }
                Err(kube::Error::Api(status)) if status.code == 401 || status.is_forbidden() => {
                    let source = kube::Error::Api(status);
                    return Err(Error::Refused {
                        pod: self.pod.clone(),
                        source,
                    });
                }
                Err(err) => {
                    tracing::warn!(pod = %self.pod, error = %err, "log request failed; retrying");
                    last_error = Some(err);
                    self.pause = true;
                }
            }
        }
    }
}

/// Whether the container has stopped for good (or the pod is gone), judged from the pod's status,
/// waiting up to [`EOF_SETTLE`] for the status to catch up with the kubelet.
async fn container_done(pods: &Api<Pod>, pod: &str, container: &str) -> bool {
    let container = container.to_owned();
    let done = move |pod: Option<&Pod>| pod.map_or(true, |pod| container_stopped(pod, &container));
    match tokio::time::timeout(EOF_SETTLE, await_condition(pods.clone(), pod, done)).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::debug!(pod, error = %err, "could not read the pod's status");
            false
        }
        Err(_) => false,
    }
}

/// Whether `container` has terminated or the pod has reached a final phase.
fn container_stopped(pod: &Pod, container: &str) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let terminal_phase = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    let terminated =
        status.container_statuses.iter().flatten().any(|c| {
            c.name == container && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
        });
    terminal_phase || terminated
}

/// What has been delivered, as far as resuming needs to know.
#[derive(Debug, Default)]
struct Delivered {
    /// The latest timestamp delivered.
    max: Option<Timestamp>,
    /// How many delivered lines carry a timestamp at or after `max` truncated to the second: these
    /// are exactly the lines a request with `sinceTime` = that second replays first.
    since_resume_point: usize,
}

impl Delivered {
    fn record(&mut self, timestamp: Timestamp) {
        match self.max {
            Some(max) if timestamp < floor_second(max) => {}
            Some(max) if floor_second(timestamp) == floor_second(max) => {
                self.since_resume_point += 1;
                self.max = Some(max.max(timestamp));
            }
            _ => {
                self.max = Some(timestamp);
                self.since_resume_point = 1;
            }
        }
    }

    /// `sinceTime` for the next request. The API takes whole seconds, and kube rounds to the
    /// nearest one, so truncate here: rounding up would lose the lines of the last half second.
    fn resume_from(&self) -> Option<Timestamp> {
        self.max.map(floor_second)
    }

    fn replay(&self) -> Skip {
        Skip {
            remaining: self.since_resume_point,
            max: self.max,
        }
    }
}

/// Drops the replayed head of a resumed stream: the kubelet re-sends, in the same order, every line
/// at or after `sinceTime`, so skip that many, but stop early at a line newer than any delivered
/// (the replay can be shorter when the kubelet rotated the log file in between).
#[derive(Debug, Default)]
struct Skip {
    remaining: usize,
    max: Option<Timestamp>,
}

impl Skip {
    fn replayed(&mut self, timestamp: Timestamp) -> bool {
        if self.remaining > 0 && self.max.is_some_and(|max| timestamp <= max) {
            self.remaining -= 1;
            true
        } else {
            self.remaining = 0;
            false
        }
    }
}

fn floor_second(timestamp: Timestamp) -> Timestamp {
    Timestamp::from_second(timestamp.as_second()).unwrap_or(timestamp)
}

/// Splits the kubelet's `<RFC 3339 timestamp> <text>` line (newline already removed), joining the
/// pieces of a line the runtime split: each piece after the first starts exactly
/// [`CRI_CHUNK_BYTES`] into the text with its own timestamp and a space. A line without a
/// parsable timestamp (the kubelet always writes one) is kept whole, stamped `fallback`.
fn parse_line(raw: &[u8], fallback: Timestamp) -> LogLine {
    let Some((mut timestamp, mut rest)) = split_timestamp(raw) else {
        return LogLine {
            text: String::from_utf8_lossy(raw).into_owned(),
            timestamp: fallback,
        };
    };
    let mut joined: Option<Vec<u8>> = None;
    while rest.len() > CRI_CHUNK_BYTES {
        let Some((next_timestamp, next)) = split_timestamp(&rest[CRI_CHUNK_BYTES..]) else {
            break;
        };
        joined
            .get_or_insert_with(Vec::new)
            .extend_from_slice(&rest[..CRI_CHUNK_BYTES]);
        timestamp = next_timestamp;
        rest = next;
    }
    let text = match joined {
        Some(mut pieces) => {
            pieces.extend_from_slice(rest);
            String::from_utf8(pieces)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }
        None => String::from_utf8_lossy(rest).into_owned(),
    };
    LogLine { text, timestamp }
}

/// `"<timestamp> <rest>"` -> `(timestamp, rest)`.
fn split_timestamp(bytes: &[u8]) -> Option<(Timestamp, &[u8])> {
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let head = &bytes[..bytes.len().min(MAX_TIMESTAMP_LEN + 1)];
    let space = head.iter().position(|&b| b == b' ')?;
    let timestamp = std::str::from_utf8(&bytes[..space]).ok()?.parse().ok()?;
    Some((timestamp, &bytes[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use http::{Request, Response};
    use kube::client::Body;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn numbered(n: usize, size: usize) -> BoxStream<'static, Result<LogLine>> {
        let lines = (0..n).map(move |i| {
            Ok(LogLine {
                text: format!("{i:0size$}"),
                timestamp: Timestamp::UNIX_EPOCH,
            })
        });
        Box::pin(stream::iter(lines))
    }

    #[tokio::test]
    async fn read_ahead_hands_over_every_line_in_order_in_bounded_batches() {
        let mut ahead = read_ahead(numbered(5000, 1000), 64 * 1024);
        let mut seen = Vec::new();
        while let Some(batch) = ahead.next_batch().await {
            let bytes: usize = batch
                .items
                .iter()
                .map(|l| l.as_ref().unwrap().text.len())
                .sum();
            assert!(
                bytes <= 64 * 1024,
                "a batch holds at most the read-ahead budget"
            );
            seen.extend(batch.items.into_iter().map(|l| l.unwrap().text));
        }
        let expected: Vec<String> = (0..5000).map(|i| format!("{i:01000}")).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn read_ahead_stops_reading_while_the_budget_is_used_up() {
        let mut ahead = read_ahead(numbered(100, 1000), 10_000);
        let held = ahead.next_batch().await.unwrap();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let queued = ahead.queue.len();
        assert!(
            held.items.len() + queued <= 10,
            "read {} + {queued} lines of 1000 bytes with a 10,000-byte budget",
            held.items.len()
        );
        let mut total = held.items.len();
        drop(held);
        while let Some(batch) = ahead.next_batch().await {
            total += batch.items.len();
        }
        assert_eq!(total, 100, "releasing the budget lets the reader finish");
    }

    #[test]
    fn parse_line_splits_the_timestamp_off() {
        let line = parse_line(
            b"2024-05-01T10:00:00.123456789Z {\"type\":\"system\"}",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(line.text, "{\"type\":\"system\"}");
        assert_eq!(line.timestamp, ts("2024-05-01T10:00:00.123456789Z"));
    }

    #[test]
    fn parse_line_reads_short_fractions_and_empty_text() {
        let line = parse_line(b"2024-05-01T10:00:00.1Z ", Timestamp::UNIX_EPOCH);
        assert_eq!(line.text, "");
        assert_eq!(line.timestamp, ts("2024-05-01T10:00:00.100Z"));
    }

    #[test]
    fn parse_line_keeps_a_line_without_timestamp_whole() {
        let fallback = ts("2024-05-01T10:00:00Z");
        let line = parse_line(b"no timestamp here", fallback);
        assert_eq!(
            line,
            LogLine {
                text: "no timestamp here".into(),
                timestamp: fallback
            }
        );
    }

    #[test]
    fn parse_line_joins_the_pieces_of_a_split_long_line() {
        let original: String = (0..40_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let bytes = original.as_bytes();
        let mut raw = b"2024-05-01T10:00:00.1Z ".to_vec();
        raw.extend_from_slice(&bytes[..CRI_CHUNK_BYTES]);
        raw.extend_from_slice(b"2024-05-01T10:00:00.2Z ");
        raw.extend_from_slice(&bytes[CRI_CHUNK_BYTES..2 * CRI_CHUNK_BYTES]);
        raw.extend_from_slice(b"2024-05-01T10:00:00.3Z ");
        raw.extend_from_slice(&bytes[2 * CRI_CHUNK_BYTES..]);
        let line = parse_line(&raw, Timestamp::UNIX_EPOCH);
        assert_eq!(line.text, original);
        assert_eq!(line.timestamp, ts("2024-05-01T10:00:00.3Z"));
    }

    #[test]
    fn parse_line_leaves_long_lines_without_inner_timestamps_alone() {
        let original = "x".repeat(3 * CRI_CHUNK_BYTES + 5);
        let raw = format!("2024-05-01T10:00:00.1Z {original}");
        assert_eq!(
            parse_line(raw.as_bytes(), Timestamp::UNIX_EPOCH).text,
            original
        );
    }

    /// Delivers `log[..cut]`, then resumes as the follower does against a kubelet that replays
    /// every line at or after `sinceTime`; returns what reached the consumer.
    fn deliver_with_drop(log: &[(&str, &str)], cut: usize) -> Vec<String> {
        let mut delivered = Delivered::default();
        let mut out = Vec::new();
        for (stamp, text) in &log[..cut] {
            delivered.record(ts(stamp));
            out.push(text.to_string());
        }
        let since = delivered.resume_from();
        let mut skip = delivered.replay();
        for (stamp, text) in log
            .iter()
            .filter(|(stamp, _)| since.map_or(true, |since| ts(stamp) >= since))
        {
            if !skip.replayed(ts(stamp)) {
                delivered.record(ts(stamp));
                out.push(text.to_string());
            }
        }
        out
    }

    fn assert_each_line_once_for_every_cut(log: &[(&str, &str)]) {
        let all: Vec<String> = log.iter().map(|(_, text)| text.to_string()).collect();
        for cut in 0..=log.len() {
            assert_eq!(deliver_with_drop(log, cut), all, "cut after {cut} lines");
        }
    }

    #[test]
    fn a_resumed_stream_yields_each_line_once() {
        assert_each_line_once_for_every_cut(&[
            ("2024-05-01T10:00:00.1Z", "a"),
            ("2024-05-01T10:00:00.7Z", "b"),
            ("2024-05-01T10:00:01.2Z", "c"),
            ("2024-05-01T10:00:01.9Z", "d"),
            ("2024-05-01T10:00:03Z", "e"),
        ]);
    }

    #[test]
    fn lines_sharing_a_timestamp_are_each_delivered_once() {
        assert_each_line_once_for_every_cut(&[
            ("2024-05-01T10:00:00.5Z", "a"),
            ("2024-05-01T10:00:00.5Z", "b"),
            ("2024-05-01T10:00:00.5Z", "c"),
            ("2024-05-01T10:00:01.5Z", "d"),
            ("2024-05-01T10:00:01.5Z", "e"),
        ]);
    }

    #[test]
    fn interleaved_stdout_and_stderr_lines_slightly_out_of_order_survive_a_drop() {
        assert_each_line_once_for_every_cut(&[
            ("2024-05-01T10:00:00.500002Z", "stdout 1"),
            ("2024-05-01T10:00:00.500001Z", "stderr 1"),
            ("2024-05-01T10:00:00.600000Z", "stdout 2"),
        ]);
    }

    #[test]
    fn skipping_stops_at_the_first_line_newer_than_any_delivered() {
        let mut delivered = Delivered::default();
        for stamp in [
            "2024-05-01T10:00:00.1Z",
            "2024-05-01T10:00:00.2Z",
            "2024-05-01T10:00:00.3Z",
        ] {
            delivered.record(ts(stamp));
        }
        let mut skip = delivered.replay();
        // The replay lost the first two lines (log rotation): only the third, then new ones.
        assert!(skip.replayed(ts("2024-05-01T10:00:00.3Z")));
        assert!(!skip.replayed(ts("2024-05-01T10:00:00.4Z")));
        assert!(!skip.replayed(ts("2024-05-01T10:00:00.5Z")));
    }

    #[test]
    fn resume_point_is_truncated_not_rounded() {
        let mut delivered = Delivered::default();
        delivered.record(ts("2024-05-01T10:00:00.9Z"));
        assert_eq!(delivered.resume_from(), Some(ts("2024-05-01T10:00:00Z")));
    }

    fn pod_list(container_state: serde_json::Value) -> Body {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": "7"},
            "items": [{
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7"},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [{
                        "name": "claude", "image": "i", "imageID": "", "ready": true,
                        "restartCount": 0, "state": container_state,
                    }],
                },
            }],
        });
        Body::from(serde_json::to_vec(&list).unwrap())
    }

    /// Answers the list that starts a watch on pod `p`, with its `claude` container in `state`.
    async fn answer_pod_list(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
        state: serde_json::Value,
    ) {
        let (request, send) = handle.next_request().await.expect("pod list");
        assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/pods");
        let query = request.uri().query().unwrap();
        assert!(query.contains("fieldSelector=metadata.name%3Dp"), "{query}");
        send.send_response(Response::new(pod_list(state)));
    }

    const LOG_PATH: &str = "/api/v1/namespaces/ns/pods/p/log";

    #[tokio::test]
    async fn log_stream_drops_then_resumes() {
        tokio::time::pause();
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let pods: Api<Pod> = Api::namespaced(kube::Client::new(service, "ns"), "ns");
        let apiserver = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("first log request");
            assert_eq!(request.uri().path(), LOG_PATH);
            assert_eq!(
                request.uri().query(),
                Some("&container=claude&follow=true&timestamps=true")
            );
            // Cut in the middle of the fourth line, while the container runs.
            send.send_response(Response::new(Body::from(
                b"2024-05-01T10:00:00.1Z one\n\
                  2024-05-01T10:00:01.2Z two\n\
                  2024-05-01T10:00:01.2Z three\n\
                  2024-05-01T10:00:01.5Z fo"
                    .to_vec(),
            )));

            answer_pod_list(&mut handle, serde_json::json!({"running": {}})).await;
            let (request, _silent_watch) = handle.next_request().await.expect("pod watch");
            assert!(request.uri().query().unwrap().contains("watch=true"));

            let (request, send) = handle.next_request().await.expect("second log request");
            assert_eq!(request.uri().path(), LOG_PATH);
            send.send_error("connection refused");

            let (request, send) = handle.next_request().await.expect("third log request");
            assert_eq!(
                request.uri().query(),
                Some("&container=claude&follow=true&sinceTime=2024-05-01T10%3A00%3A01Z&timestamps=true")
            );
            // The follow stream ends early (as the kubelet's does after a log rotation) with a
            // piece of "six"...
            send.send_response(Response::new(Body::from(
                b"2024-05-01T10:00:01.2Z two\n\
                  2024-05-01T10:00:01.2Z three\n\
                  2024-05-01T10:00:01.5Z four\n\
                  2024-05-01T10:00:02Z five\n\
                  2024-05-01T10:00:02.1Z si"
                    .to_vec(),
            )));
            // ...when the container has stopped: one last read, not following, gets the rest.
            answer_pod_list(
                &mut handle,
                serde_json::json!({"terminated": {"exitCode": 0}}),
            )
            .await;
            let (request, send) = handle.next_request().await.expect("last log request");
            assert_eq!(
                request.uri().query(),
                Some("&container=claude&sinceTime=2024-05-01T10%3A00%3A02Z&timestamps=true")
            );
            send.send_response(Response::new(Body::from(
                b"2024-05-01T10:00:02Z five\n\
                  2024-05-01T10:00:02.1Z six\n\
                  2024-05-01T10:00:02.2Z seven, without a newline"
                    .to_vec(),
            )));
        });

        let params = FollowParams {
            container: "claude".into(),
            limit_bytes_per_request: None,
        };
        let lines: Vec<String> = follow(pods, "p".into(), params)
            .map_ok(|line| line.text)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            lines,
            [
                "one",
                "two",
                "three",
                "four",
                "five",
                "six",
                "seven, without a newline"
            ]
        );
        apiserver.await.unwrap();
    }
}
