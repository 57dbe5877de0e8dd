// `node bench/rotation.mjs`: a run whose CLI writes 3 × 12 MiB of numbered stream-json lines with
// 6 s pauses, so that the kubelet rotates the container log (past 10 MiB, checked every 10 s) while
// the adapter follows it, and the same log followed directly (plain HTTPS follow, admin identity).
// Prints how many lines each reader got and which were lost, and the run's result. Not part of
// `npm run bench` (a correctness probe, not a speed figure); about 40 s. Needs root and the testbed.
import { join } from "node:path";
import { deleteNamespace, dumpCommand, followDirectly, namespaceFor, runJob } from "./job.mjs";
import { TESTBED_DIR } from "./audit.mjs";

/** Lines per batch (1 KiB each): 12 MiB. */
const BATCH_LINES = 12 * 1024;
const BATCHES = 3;
/** Pause between batches, so that the 10 s rotation check falls inside the run. */
const PAUSE_SECONDS = 6;
/** How long to wait for the direct follow to end once the run resolved. */
const DIRECT_GRACE_MS = 3000;

const cmd = Array.from({ length: BATCHES }, (_, i) => dumpCommand(i * BATCH_LINES, BATCH_LINES)).join(`; sleep ${PAUSE_SECONDS}; `);

const name = "rotation";
const namespace = namespaceFor(name);
const direct = followDirectly(namespace, Date.now() + 60_000);
const kubeconfig = join(TESTBED_DIR, "run", "admin.kubeconfig");
const run = await runJob({ name, prompt: `USE_TOOL CMD[${cmd}]`, kubeconfig, dump: true, retainJobs: true, namespace });
const followed = await Promise.race([direct, new Promise((r) => setTimeout(() => r(undefined), DIRECT_GRACE_MS))]);
deleteNamespace(namespace);
const show = (seq) => `${seq.received} received, ${seq.missing} missing${seq.gaps.length ? ` (lines ${seq.gaps.join(", ")})` : ""}`;
console.log(`written by the container: ${run.dump.written} lines; the kubelet rotated its log ${run.dump.rotations} time(s)`);
console.log(`adapter (onLog):          ${show(run.dump.seq)}`);
console.log(`direct follow:            ${followed ? show(followed.check.summary(run.dump.written)) : "still open after the run"}`);
console.log(`result: exit ${run.result.exitCode}${run.result.errorCode ? `, ${run.result.errorCode}: ${run.result.errorMessage}` : ""}`);
setTimeout(() => process.exit(0), 500);
