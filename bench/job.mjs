// One real run through the adapter's execute(), timed at onLog and at resolution, with the CRI
// log file's timestamps (the container runtime's record of when each line was written) and the
// pod's container startedAt read on the side with the testbed's admin identity (not counted).
import { readdirSync, readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createServerAdapter } from "../index.js";
import { TESTBED_DIR, readKubeconfig, request } from "./audit.mjs";

/** Where the kubelet keeps container logs: <namespace>_<pod>_<uid>/<container>/<restart>.log. */
const POD_LOGS = "/var/log/pods";
const EXIT_MARKER = "[claude_k8s] claude exited with code ";

const admin = readKubeconfig(join(TESTBED_DIR, "run", "admin.kubeconfig"));
const adapter = createServerAdapter();
const stamp = Date.now().toString(36);

/** A dump line: DUMP_HEAD, a DUMP_SEQ_DIGITS-digit sequence number from DUMP_SEQ_BASE + 1, filler, DUMP_TAIL. */
export const DUMP_HEAD = '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"';
export const DUMP_TAIL = '"}},"session_id":"bench-dump"}';
export const DUMP_SEQ_BASE = 100_000;
export const DUMP_SEQ_DIGITS = 6;
/** Size of each dump line, newline included. */
export const DUMP_LINE_BYTES = 1024;

/**
 * The shell command (for CMD[...]: no `]`) writing dump lines number `from + 1` to `from + count`
 * straight into the container's stdout: /proc/1/fd/1 is the wrapper shell's stdout (PID 1 of the
 * container), i.e. the container log, so the lines bypass the CLI's capture of tool output.
 */
export function dumpCommand(from, count) {
  const filler = "x".repeat(DUMP_LINE_BYTES - 1 - DUMP_HEAD.length - DUMP_SEQ_DIGITS - DUMP_TAIL.length);
  const first = DUMP_SEQ_BASE + from + 1;
  return `seq ${first} ${first + count - 1} | sed 's/.*/${DUMP_HEAD}&${filler}${DUMP_TAIL}/' > /proc/1/fd/1`;
}

const isDumpLine = (line) => line.startsWith(DUMP_HEAD) && line.includes(DUMP_TAIL);

/** Checks the dump lines' sequence numbers: how many arrived, were skipped, came out of order. */
class SeqCheck {
  constructor() {
    this.next = DUMP_SEQ_BASE + 1;
    this.received = 0;
    this.missing = 0;
    this.backwards = 0;
    this.gaps = [];
  }

  observe(line) {
    const seq = Number(line.slice(DUMP_HEAD.length, DUMP_HEAD.length + DUMP_SEQ_DIGITS));
    this.received += 1;
    if (seq > this.next) {
      this.missing += seq - this.next;
      if (this.gaps.length < 5) this.gaps.push(`${this.next - DUMP_SEQ_BASE}-${seq - 1 - DUMP_SEQ_BASE}`);
    } else if (seq < this.next) {
      this.backwards += 1;
    }
    this.next = Math.max(this.next, seq + 1);
  }

  summary(expected) {
    const tail = expected - (this.next - 1 - DUMP_SEQ_BASE);
    const missing = this.missing + Math.max(0, tail);
    const gaps = tail > 0 ? [...this.gaps, `${this.next - DUMP_SEQ_BASE}-${expected} (the end)`] : this.gaps;
    return { received: this.received, missing, backwards: this.backwards, gaps };
  }
}

/** The namespace a run named `name` gets (unique per bench process). */
export const namespaceFor = (name) => `bench-${stamp}-${name}`;

export const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Deletes a namespace without waiting (the run is over; its Job is gone or retained). */
export function deleteNamespace(ns) {
  request(admin, "DELETE", `/api/v1/namespaces/${ns}`).catch(() => {});
}

async function createNamespace(ns) {
  const { status, body } = await request(admin, "POST", "/api/v1/namespaces", { metadata: { name: ns } });
  if (status !== 201) throw new Error(`creating namespace ${ns}: ${status} ${body}`);
}

/**
 * The claude container's CRI log, entries joined across partial (P) records: [{ ms, text }].
 * The kubelet rotates a container log past 10 MiB (checked every 10 s) into `0.log.<time>`, gzipped
 * later: those come first, oldest first.
 */
function readCriLog(ns) {
  const dir = readdirSync(POD_LOGS).find((d) => d.startsWith(`${ns}_`));
  if (!dir) throw new Error(`no pod log directory for namespace ${ns} in ${POD_LOGS}`);
  const container = join(POD_LOGS, dir, "claude");
  const rotated = readdirSync(container).filter((f) => f.startsWith("0.log.") && !f.endsWith(".tmp")).sort();
  const read = (f) => {
    const raw = readFileSync(join(container, f));
    return (f.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
  };
  const text = [...rotated, "0.log"].map(read).join("");
  const entries = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    if (!raw) continue;
    const a = raw.indexOf(" ");
    const b = raw.indexOf(" ", a + 1);
    const c = raw.indexOf(" ", b + 1);
    const tag = raw.slice(b + 1, c);
    pending += raw.slice(c + 1);
    if (tag === "P") continue;
    entries.push({ ms: criMs(raw.slice(0, a)), text: pending });
    pending = "";
  }
  entries.rotations = rotated.length;
  return entries;
}

/** An RFC 3339 timestamp with nanoseconds as fractional milliseconds since the epoch. */
function criMs(ts) {
  const m = ts.match(/^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-].*)$/);
  return Date.parse(m[1] + m[3]) + Number(`0.${m[2] ?? "0"}`) * 1000;
}

/**
 * Follows the claude container's log of the (only) pod in `ns` directly through the apiserver
 * (admin identity, timestamps=true, as the adapter does), from when the container runs, noting
 * when the first and last chunk holding a dump line arrive. For comparison with the adapter: the
 * same pipeline minus the adapter. Resolves { firstAt, lastAt, bytes, check } when the stream
 * ends, or undefined when no pod started before `deadlineMs`.
 */
export async function followDirectly(ns, deadlineMs) {
  let pod;
  while (!pod) {
    if (Date.now() > deadlineMs) return undefined;
    await new Promise((r) => setTimeout(r, 100));
    const list = await request(admin, "GET", `/api/v1/namespaces/${ns}/pods`).catch(() => undefined);
    const items = list?.status === 200 ? JSON.parse(list.body).items : [];
    const started = (c) => c.name === "claude" && (c.state?.running || c.state?.terminated);
    const running = items.find((p) => p.status?.containerStatuses?.some(started));
    pod = running?.metadata?.name;
  }
  const url = new URL(`/api/v1/namespaces/${ns}/pods/${pod}/log?container=claude&timestamps=true&follow=true`, admin.server);
  return new Promise((resolve, reject) => {
    const seen = { firstAt: undefined, lastAt: undefined, bytes: 0 };
    const check = new SeqCheck();
    let carry = "";
    https.get(url, { ca: admin.ca, cert: admin.cert, key: admin.key }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (c) => {
        const now = Date.now();
        seen.bytes += c.length;
        const lines = (carry + c).split("\n");
        carry = lines.pop();
        for (const line of lines) {
          const text = line.slice(line.indexOf(" ") + 1);
          if (!isDumpLine(text)) continue;
          check.observe(text);
          seen.firstAt ??= now;
          seen.lastAt = now;
        }
      });
      res.on("end", () => resolve({ ...seen, check }));
    }).on("error", reject);
  });
}

/**
 * The pipeline's ceiling without the adapter: the finished (retained) container's whole log read
 * through the apiserver as the adapter reads it (timestamps=true), bytes only. { mb, seconds }.
 */
async function readWholeLog(ns) {
  const pods = JSON.parse((await request(admin, "GET", `/api/v1/namespaces/${ns}/pods`)).body);
  const pod = pods.items[0].metadata.name;
  const url = new URL(`/api/v1/namespaces/${ns}/pods/${pod}/log?container=claude&timestamps=true`, admin.server);
  const started = Date.now();
  const bytes = await new Promise((resolve, reject) => {
    https.get(url, { ca: admin.ca, cert: admin.cert, key: admin.key }, (res) => {
      let n = 0;
      res.on("data", (c) => (n += c.length));
      res.on("end", () => resolve(n));
    }).on("error", reject);
  });
  return { mb: bytes / 1e6, seconds: (Date.now() - started) / 1000 };
}

const isContainerLine = (chunk) => chunk.startsWith("{") || chunk.startsWith(EXIT_MARKER);

/**
 * Runs one Job with `prompt` in a fresh namespace. Returns timings (ms), the result, and for
 * `dump: true` the throughput figures of the dump lines (lines with session_id "bench-dump").
 */
export async function runJob({ name, prompt, kubeconfig, dump = false, retainJobs = false, syncOnLog = false, namespace = namespaceFor(name) }) {
  await createNamespace(namespace);
  const config = {
    kubeconfig,
    namespace,
    image: "paperclip/claude-agent:dev",
    imagePullPolicy: "IfNotPresent",
    hostNetwork: true,
    retainJobs,
    resources: { requests: { cpu: "10m", memory: "64Mi" } },
    promptTemplate: prompt,
    env: {
      ANTHROPIC_BASE_URL: "http://127.0.0.1:18765",
      ANTHROPIC_API_KEY: "testbed",
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      CLAUDE_CODE_MAX_RETRIES: "0",
    },
  };

  const t = { name, namespace, containerLines: 0 };
  const d = { lines: 0, bytes: 0, first: undefined, last: undefined };
  const dumpOnLog = [];
  const seqCheck = new SeqCheck();
  let podRead;
  let criRead;
  // A chunk may hold several lines (an adapter may batch them); each counts with the chunk's time.
  const onLogSync = (_stream, chunk) => {
    const now = Date.now();
    const chunkLines = chunk.split("\n");
    if (chunkLines.at(-1) === "") chunkLines.pop();
    for (const line of chunkLines) {
      if (!isContainerLine(line)) continue;
      t.containerLines += 1;
      if (t.firstOnLog === undefined) {
        t.firstOnLog = now;
        podRead = request(admin, "GET", `/api/v1/namespaces/${namespace}/pods`);
      }
      if (dump && isDumpLine(line)) {
        seqCheck.observe(line);
        d.lines += 1;
        d.bytes += line.length + 1;
        d.first ??= now;
        d.last = now;
        dumpOnLog.push(now);
      }
      if (line.startsWith(EXIT_MARKER)) {
        t.markerOnLog = now;
        // Read the CRI log now: without retainJobs the pod (and its log) goes with the Job.
        if (!retainJobs) criRead = new Promise((resolve) => setImmediate(() => resolve(readCriLog(namespace))));
      }
    }
  };

  // Paperclip's onLog is async (it returns a Promise the adapter awaits); `syncOnLog` returns
  // nothing instead, which spares the adapter the await: the difference is that await's cost.
  const onLog = syncOnLog ? onLogSync : async (stream, chunk) => onLogSync(stream, chunk);

  const rssBefore = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  t.startedAt = Date.now();
  t.result = await adapter.execute({
    runId: `bench-${stamp}-${name}`,
    agent: { id: `bench-${name}`, companyId: "bench", name: "Bench", adapterType: "claude_k8s", adapterConfig: config },
    runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null },
    config,
    context: {},
    authToken: "bench-token",
    onLog,
    onMeta: async () => {},
  });
  t.resolvedAt = Date.now();
  const cpu = process.cpuUsage(cpu0);

  const cri = retainJobs ? readCriLog(namespace) : await criRead;
  if (cri) {
    const markerIdx = cri.findIndex((e) => e.text.startsWith(EXIT_MARKER));
    const marker = cri[markerIdx];
    const lastCli = cri[markerIdx - 1];
    t.lastCliToResolved = lastCli && t.resolvedAt - lastCli.ms;
    t.markerToResolved = marker && t.resolvedAt - marker.ms;
    t.markerToOnLog = marker && t.markerOnLog - marker.ms;
    t.lastCliToMarker = lastCli && marker && marker.ms - lastCli.ms;
    t.onLogMarkerToResolved = t.resolvedAt - t.markerOnLog;
    t.firstLineMs = cri[0]?.ms;
    t.firstLineToOnLog = cri.length ? t.firstOnLog - cri[0].ms : undefined;
    if (dump) {
      const dumped = cri.filter((e) => isDumpLine(e.text));
      d.written = dumped.length;
      d.rotations = cri.rotations;
      d.seq = seqCheck.summary(dumped.length);
      d.firstWrittenMs = dumped[0]?.ms;
      d.lastWrittenMs = dumped.at(-1)?.ms;
      d.writeSeconds = dumped.length ? (dumped.at(-1).ms - dumped[0].ms) / 1000 : undefined;
      d.lagLastMs = dumped.length ? d.last - dumped.at(-1).ms : undefined;
      if (dumped.length === dumpOnLog.length) {
        const lags = dumpOnLog.map((at, i) => at - dumped[i].ms);
        d.lag = { first: lags[0], median: median(lags), max: Math.max(...lags), last: lags.at(-1) };
      }
      d.ceiling = await readWholeLog(namespace);
    }
  }
  if (podRead) {
    const pods = JSON.parse((await podRead).body);
    const status = pods.items?.[0]?.status?.containerStatuses?.find((c) => c.name === "claude");
    t.containerStartedAt = status?.state?.running?.startedAt ?? status?.state?.terminated?.startedAt;
    t.startedAtToOnLog = t.containerStartedAt ? t.firstOnLog - Date.parse(t.containerStartedAt) : undefined;
    t.startedAtToFirstLine = t.containerStartedAt && t.firstLineMs ? t.firstLineMs - Date.parse(t.containerStartedAt) : undefined;
  }
  if (dump) {
    const hwm = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+) kB/);
    t.dump = {
      ...d,
      seconds: (d.last - d.first) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      peakRssMiB: Number(hwm[1]) / 1024,
      baseRssMiB: rssBefore / 1024 / 1024,
      exitCode: t.result.exitCode,
      errorCode: t.result.errorCode,
    };
  }
  return t;
}
