// `npm run bench`: runs real Jobs on the testbed through the adapter's execute() (release addon)
// and prints the figures of the speed issue, each beside the incumbent's figure and our target.
// It prints figures only: no pass/fail. Methods: bench/README.md.
//
// Needs: the testbed up (testbed/up), root (to read the CRI log files under /var/log/pods and the
// testbed's CA key), and `npm run build` (the release addon).
//
// Settings (environment): BENCH_LATENCY_RUNS (default 5), BENCH_LONG_SECONDS (default 120),
// BENCH_DUMP_MIB (default 50), BENCH_SYNC_ONLOG=1 (the dump runs' onLog returns no Promise).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { requestKind, startAudit } from "./audit.mjs";
import { DUMP_LINE_BYTES, deleteNamespace, dumpCommand, followDirectly, median, namespaceFor, runJob } from "./job.mjs";

const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 5);
const LONG_SECONDS = Number(process.env.BENCH_LONG_SECONDS ?? 120);
const DUMP_MIB = Number(process.env.BENCH_DUMP_MIB ?? 50);
/** After a run resolves, how long to wait before reading the audit log (events are written as
 * requests complete; a watch the adapter closed completes a moment later). */
const AUDIT_SETTLE_MS = 1500;
/** How long the direct follow may take to end after the dump run resolved. */
const DIRECT_GRACE_MS = 5000;
/** How long the direct follower of the dump run waits for its pod to run. */
const DIRECT_FOLLOW_WAIT_MS = 60_000;

const say = (line) => process.stderr.write(`[bench] ${line}\n`);
const ms = (v) => (v === undefined || Number.isNaN(v) ? "n/a" : `${Math.round(v)} ms`);
const stat = (values) => {
  const v = values.filter((x) => x !== undefined && !Number.isNaN(x));
  return v.length ? `median ${ms(median(v))}, max ${ms(Math.max(...v))} (n=${v.length})` : "n/a";
};

async function main() {
  if (process.argv[2] === "--dump-child") return dumpChild(process.argv[3], process.argv[4]);
  const started = Date.now();
  say("starting the audited apiserver identity");
  const audit = await startAudit();
  say(`API requests are counted from the audit log of ${audit.mode}`);
  const runs = [];
  const apiCounts = [];
  let dump;
  let dumpWithDirect;
  const dumpNamespaces = [];
  try {
    for (let i = 1; i <= LATENCY_RUNS; i++) {
      runs.push(await measured(audit, `hello-${i}`, "Say hello."));
    }
    apiCounts.push(await measured(audit, "slow-10", "SLOW[10]"));
    runs.push(apiCounts.at(-1));
    say(`a ${LONG_SECONDS} s run (SLOW[${LONG_SECONDS}])`);
    apiCounts.push(await measured(audit, `slow-${LONG_SECONDS}`, `SLOW[${LONG_SECONDS}]`));
    runs.push(apiCounts.at(-1));
    say(`the ${DUMP_MIB} MiB transcript, in a fresh node process (its CPU and RSS alone)`);
    const from = Date.now();
    dumpNamespaces.push(namespaceFor(`dump-${DUMP_MIB}m`));
    dump = await dumpInChild(audit.kubeconfig, dumpNamespaces[0]);
    const to = Date.now();
    await new Promise((r) => setTimeout(r, AUDIT_SETTLE_MS));
    dump.apiRequests = audit.events(from, to + AUDIT_SETTLE_MS).length;
    say("again, with the same log also followed directly by this process (no adapter), for comparison");
    const namespace = namespaceFor(`dump-${DUMP_MIB}m-direct`);
    dumpNamespaces.push(namespace);
    const direct = followDirectly(namespace, Date.now() + DIRECT_FOLLOW_WAIT_MS);
    dumpWithDirect = await dumpInChild(audit.kubeconfig, namespace);
    const late = new Promise((r) => setTimeout(() => r(undefined), DIRECT_GRACE_MS).unref());
    dumpWithDirect.direct = await Promise.race([direct, late]);
  } finally {
    // The child deletes its namespace; again here in case it failed first (a 404 is fine).
    dumpNamespaces.forEach(deleteNamespace);
    await audit.stop();
  }

  report(runs, apiCounts, dump, dumpWithDirect);
  say(`bench took ${Math.round((Date.now() - started) / 1000)} s`);
}

/** One run plus its API requests from the audit log. */
async function measured(audit, name, prompt) {
  say(`run ${name}: ${prompt}`);
  const run = await runJob({ name, prompt, kubeconfig: audit.kubeconfig });
  await new Promise((r) => setTimeout(r, AUDIT_SETTLE_MS));
  const events = audit.events(run.startedAt, run.resolvedAt + AUDIT_SETTLE_MS);
  run.api = { total: events.length, afterResolve: events.filter((e) => Date.parse(e.requestReceivedTimestamp) > run.resolvedAt).length, kinds: countBy(events, requestKind) };
  const logRequest = events.find((e) => requestKind(e) === "get pods/log");
  if (logRequest && run.firstLineMs) run.logOpenedAfterFirstLine = Date.parse(logRequest.requestReceivedTimestamp) - run.firstLineMs;
  deleteNamespace(run.namespace);
  const err = run.result.errorCode ? ` errorCode=${run.result.errorCode}: ${run.result.errorMessage}` : "";
  say(`  ${run.containerLines} container lines, exit ${run.result.exitCode}, ${run.api.total} API requests, exit marker -> resolved ${ms(run.markerToResolved)}${err}`);
  return run;
}

function countBy(items, key) {
  const counts = new Map();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]);
}

/** The dump run in a child node process, so its CPU time and peak RSS are the adapter's alone. */
function dumpInChild(kubeconfig, namespace) {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [self, "--dump-child", kubeconfig, namespace], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`dump child exited with ${code}`))));
  });
}

/**
 * The dump run: the CLI's Bash tool writes DUMP_MIB MiB of stream-json lines (1 KiB each) straight
 * into the container's stdout (/proc/1/fd/1, the wrapper shell's stdout: the container log), so
 * the whole pipeline (containerd, kubelet, apiserver, adapter, onLog) carries them. Prints JSON.
 */
async function dumpChild(kubeconfig, namespace) {
  const bytes = DUMP_MIB * 1024 * 1024;
  const prompt = `USE_TOOL CMD[${dumpCommand(0, bytes / DUMP_LINE_BYTES)}]`;
  const syncOnLog = process.env.BENCH_SYNC_ONLOG === "1";
  const run = await runJob({ name: `dump-${DUMP_MIB}m`, prompt, kubeconfig, dump: true, retainJobs: true, syncOnLog, namespace });
  deleteNamespace(run.namespace);
  process.stdout.write(JSON.stringify(run.dump));
}

function report(runs, apiCounts, dump, dumpWithDirect) {
  const ok = runs.filter((r) => !r.result.errorCode);
  const rows = [];
  const out = (s = "") => process.stdout.write(`${s}\n`);

  out("\n== 1. container exit -> execute() resolved (Date.now() vs CRI timestamps, same host clock)");
  for (const r of ok) {
    out(`  ${r.name.padEnd(10)} CLI's last line -> resolved ${ms(r.lastCliToResolved).padStart(8)} | exit marker -> resolved ${ms(r.markerToResolved).padStart(8)} | marker written -> at onLog ${ms(r.markerToOnLog).padStart(7)} | marker at onLog -> resolved ${ms(r.onLogMarkerToResolved).padStart(7)} | CLI's last line -> marker written (the CLI exiting) ${ms(r.lastCliToMarker).padStart(7)}`);
  }
  rows.push(["CLI's last line -> execute resolved", stat(ok.map((r) => r.lastCliToResolved)), "1.3-1.5 s", "<= 150 ms"]);
  rows.push(["exit marker -> execute resolved", stat(ok.map((r) => r.markerToResolved)), "-", "<= 150 ms"]);
  rows.push(["  of which the CLI exiting (last line -> marker)", stat(ok.map((r) => r.lastCliToMarker)), "-", "-"]);

  out("\n== 2. container start -> first line at onLog");
  for (const r of ok) {
    out(`  ${r.name.padEnd(10)} first line written -> onLog ${ms(r.firstLineToOnLog).padStart(7)} | startedAt (1 s resolution) -> onLog ${ms(r.startedAtToOnLog).padStart(8)} | startedAt -> first line written (the CLI starting) ${ms(r.startedAtToFirstLine).padStart(8)} | startedAt ${r.containerStartedAt}`);
  }
  const opened = ok.filter((r) => r.logOpenedAfterFirstLine !== undefined);
  if (opened.length) out(`  adapter's pods/log request received by the apiserver (audit) - first line written: ${stat(opened.map((r) => r.logOpenedAfterFirstLine))} (positive: the line was already waiting when the follow began)`);
  rows.push(["first log line written -> onLog", stat(ok.map((r) => r.firstLineToOnLog)), "-", "<= 100 ms"]);
  rows.push(["container startedAt -> first onLog", stat(ok.map((r) => r.startedAtToOnLog)), "1.8 s", "<= 100 ms"]);
  rows.push(["  of which the CLI starting (startedAt -> line)", stat(ok.map((r) => r.startedAtToFirstLine)), "-", "-"]);

  out("\n== 3. Kubernetes API requests per run (apiserver audit log, user bench)");
  for (const r of apiCounts) {
    const secs = ((r.resolvedAt - r.startedAt) / 1000).toFixed(1);
    out(`  ${r.name} (${secs} s): ${r.api.total} requests${r.api.afterResolve ? ` (${r.api.afterResolve} after resolve)` : ""}`);
    for (const [kind, n] of r.api.kinds) out(`    ${String(n).padStart(3)}  ${kind}`);
    rows.push([`API requests, ${r.name} run (${secs} s)`, String(r.api.total), "74-115 (2 min run)", "<= 15"]);
  }

  out(`\n== 4. log throughput: ${DUMP_MIB} MiB of 1 KiB stream-json lines written into the container log`);
  out(`  ${dump.lines} dump lines, ${(dump.bytes / 1e6).toFixed(1)} MB at onLog in ${dump.seconds.toFixed(2)} s; written by the container in ${dump.writeSeconds?.toFixed(2) ?? "n/a"} s (CRI timestamps), last line written -> onLog ${ms(dump.lagLastMs)}`);
  const lost = (seq) => `${seq.received} received, ${seq.missing} missing${seq.gaps.length ? ` (lines ${seq.gaps.join(", ")})` : ""}, ${seq.backwards} out of order`;
  if (dump.seq) out(`  completeness: the container wrote ${dump.written} dump lines (log rotated ${dump.rotations} time(s) meanwhile); at onLog ${lost(dump.seq)}`);
  if (dump.lag) out(`  line written -> at onLog: first ${ms(dump.lag.first)}, median ${ms(dump.lag.median)}, max ${ms(dump.lag.max)}, last ${ms(dump.lag.last)}`);
  if (dump.ceiling) out(`  without the adapter: the finished log (${dump.ceiling.mb.toFixed(1)} MB with timestamps) read through the apiserver in ${dump.ceiling.seconds.toFixed(2)} s = ${(dump.ceiling.mb / dump.ceiling.seconds).toFixed(1)} MB/s (kubelet + apiserver ceiling; after a rotation the kubelet serves only the current file)`);
  out(`  whole node process (node + addon) over the run: CPU ${dump.cpuSeconds.toFixed(2)} s (${(dump.cpuSeconds / (dump.bytes / 1e6)).toFixed(4)} s/MB), peak RSS ${dump.peakRssMiB.toFixed(0)} MiB (VmHWM; ${dump.baseRssMiB.toFixed(0)} MiB before the run)`);
  out(`  run result: exit ${dump.exitCode}${dump.errorCode ? `, errorCode ${dump.errorCode}` : ""}; ${dump.apiRequests} API requests`);
  const w = dumpWithDirect;
  const dd = w?.direct;
  if (dd?.firstAt) {
    out("  second dump run, its log followed at the same time by the adapter and directly (plain HTTPS follow, timestamps=true, admin identity):");
    out(`    adapter at onLog: ${(w.bytes / 1e6 / w.seconds).toFixed(1)} MB/s first -> last; first line lag ${ms(w.lag?.first)}, last ${ms(w.lag?.last)}`);
    out(`    direct follow:    ${(w.bytes / 1e6 / ((dd.lastAt - dd.firstAt) / 1000)).toFixed(1)} MB/s first -> last; first line lag ${ms(dd.firstAt - w.firstWrittenMs)}, last ${ms(dd.lastAt - w.lastWrittenMs)}`);
    if (w.seq) out(`    completeness: written ${w.written}; adapter ${lost(w.seq)}; direct follow ${lost(dd.check.summary(w.written))}`);
    out(`    container wrote it in ${w.writeSeconds?.toFixed(2)} s (${(w.bytes / 1e6 / w.writeSeconds).toFixed(1)} MB/s)`);
  }
  rows.push(["log throughput, first -> last line at onLog", `${(dump.bytes / 1e6 / dump.seconds).toFixed(1)} MB/s`, "47-78 MB/s", ">= 50 MB/s"]);
  rows.push(["  the container's own write rate (CRI stamps)", dump.writeSeconds ? `${(dump.bytes / 1e6 / dump.writeSeconds).toFixed(1)} MB/s` : "n/a", "-", "-"]);
  rows.push(["  lag line written -> onLog (median / last)", dump.lag ? `${ms(dump.lag.median)} / ${ms(dump.lag.last)}` : "n/a", "-", "-"]);
  rows.push(["  dump lines lost at onLog", dump.seq ? `${dump.seq.missing} of ${dump.written}` : "n/a", "-", "0"]);
  rows.push(["CPU (node+addon) for the run", `${dump.cpuSeconds.toFixed(2)} s (${(dump.cpuSeconds / (dump.bytes / 1e6) * 1000).toFixed(1)} ms/MB)`, "0.4-1.5 s", "-"]);
  rows.push(["peak RSS of the process", `${dump.peakRssMiB.toFixed(0)} MiB`, "260-460 MiB", "-"]);

  out("\n== summary");
  const widths = [0, 1, 2, 3].map((i) => Math.max(...[["metric", "measured", "incumbent", "target"], ...rows].map((r) => r[i].length)));
  const fmt = (r) => `  ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")}`;
  out(fmt(["metric", "measured", "incumbent", "target"]));
  out(`  ${widths.map((w) => "-".repeat(w)).join("-|-")}`);
  for (const r of rows) out(fmt(r));
  const failed = runs.filter((r) => r.result.errorCode);
  for (const r of failed) out(`  note: run ${r.name} ended with ${r.result.errorCode}: ${r.result.errorMessage}`);
}

main().catch((err) => {
  process.stderr.write(`[bench] ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
