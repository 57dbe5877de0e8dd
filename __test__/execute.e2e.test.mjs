// End-to-end tests of execute(ctx) against the testbed cluster (testbed/README.md), with the real
// Claude Code CLI in the agent image talking to the stand-in Anthropic API. The adapter is loaded
// exactly as Paperclip loads it: `createServerAdapter().execute(ctx)` from the package entry.
// Each test makes its own namespace (and PVC where sessions matter) and deletes it afterwards.
//
// Run: node --test __test__/execute.e2e.test.mjs   (needs `testbed/up` and `npm run build:debug`)
import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { before, describe, it } from "node:test";

import { createServerAdapter } from "../index.js";
import {
  apiProxy,
  baseConfig,
  eventually,
  jobNameOf,
  kubeconfigCopy,
  kubectl,
  kubectlJson,
  mockRequests,
  names,
  podLog,
  pvcHostDir,
  recordingCtx,
  requireTestbed,
  runSelector,
  testNamespace,
  uniqueName,
} from "./helpers/testbed.mjs";

/** Generous per-test limit: a run on the loaded 2-core node takes 5 to 30 s. */
const TEST_TIMEOUT_MS = 240_000;

/** The arguments every run passes before the optional ones (SPEC §5 step 5). */
const BASE_ARGS = ["--print", "--output-format", "stream-json", "--verbose"];

/** A pod status line of step 8 (`[claude_k8s] pod <name>: <state>`). */
const STATUS_LINE = /^\[claude_k8s\] pod [a-z0-9-]+: \S.*\n$/;

/** The keepalive line of step 9 (after 15 s of silence). */
const KEEPALIVE_LINE = /^\[claude_k8s\] still running \(Job [a-z0-9-]+, no output for 15 s\)\n$/;

/** The wrapper's last log line (src/plan/manifest.rs EXIT_MARKER). */
const exitMarker = (code) => `[claude_k8s] claude exited with code ${code}`;

const adapter = createServerAdapter();

/**
 * The transcript part of what reached onLog("stdout"), checked for shape on the way: every chunk
 * ends a line; the first lines are pod status lines (at least one, all about one pod, no
 * line repeated, the last saying the CLI runs or ran), which the pod log does not hold; keepalive
 * lines (also not in the pod log) may come anywhere and are dropped; everything else is the
 * transcript, concatenated.
 */
function streamedTranscript(rec) {
  const whole = rec.logs.filter(([stream]) => stream === "stdout").map(([, chunk]) => chunk);
  for (const chunk of whole) {
    assert.ok(chunk.endsWith("\n"), `a chunk that does not end a line: ${JSON.stringify(chunk.slice(-200))}`);
  }
  // A chunk holds whole lines (several when the adapter read ahead of onLog); check them one by one.
  const chunks = whole.flatMap((chunk) => chunk.slice(0, -1).split("\n").map((line) => `${line}\n`));
  let start = 0;
  while (start < chunks.length && STATUS_LINE.test(chunks[start])) start += 1;
  assert.ok(start >= 1, `no pod status line before the transcript: ${JSON.stringify(chunks.slice(0, 3))}`);
  const statuses = chunks.slice(0, start);
  const pod = /^\[claude_k8s\] pod ([a-z0-9-]+): /.exec(statuses[0])[1];
  assert.ok(statuses.every((line) => line.startsWith(`[claude_k8s] pod ${pod}: `)), statuses.join(""));
  assert.ok(statuses.every((line, i) => i === 0 || line !== statuses[i - 1]), `repeated status line: ${statuses.join("")}`);
  // A fast CLI can be done before the pod watch sees it running.
  const started = /: (Running|container claude exited with code \d+( \(\w+\))?|Succeeded)\n$/;
  assert.match(statuses.at(-1), started);
  return chunks.slice(start).filter((chunk) => !KEEPALIVE_LINE.test(chunk)).join("");
}

/** The JSON events of a pod log (the wrapper's exit line is the only non-JSON line). */
function eventsOf(log) {
  return log.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

/**
 * Asserts that a `LINES[n]` transcript holds the stand-in API's n text blocks "Line i of n." in
 * assistant lines, each exactly once and in order, between one init and one result, with the
 * wrapper's exit line last.
 */
function assertLinesInOrder(transcript, n) {
  const lines = transcript.split("\n");
  assert.equal(lines.pop(), "", "the transcript does not end with a newline");
  let next = 1;
  const counts = { init: 0, result: 0 };
  for (const line of lines) {
    if (line === exitMarker(0)) continue;
    const event = JSON.parse(line);
    if (event.type === "system" && event.subtype === "init") counts.init += 1;
    if (event.type === "result") counts.result += 1;
    if (event.type !== "assistant") continue;
    for (const block of event.message.content.filter((b) => b.type === "text")) {
      if (block.text !== `Line ${next} of ${n}.`) {
        assert.fail(`after ${next - 1} lines in order, got ${JSON.stringify(block.text)} instead of "Line ${next} of ${n}."`);
      }
      next += 1;
    }
  }
  assert.equal(next - 1, n, `${next - 1} of ${n} lines arrived`);
  assert.deepEqual(counts, { init: 1, result: 1 });
  assert.equal(lines.at(-1), exitMarker(0));
}

/** Asserts that the run left neither Job nor Secret behind. */
async function assertCleanedUp(ns, runId) {
  assert.deepEqual(await names("jobs", ns, runSelector(runId)), [], "Job left behind");
  assert.deepEqual(await names("secrets", ns, runSelector(runId)), [], "Secrets left behind");
}

/** A run that is expected to fail before or outside Claude: no session, no usage. */
function assertNoClaudeResult(result) {
  assert.equal(result.sessionId, undefined);
  assert.equal(result.usage, undefined);
  assert.equal(result.resultJson, undefined);
}

before(requireTestbed);

describe("execute() against the testbed cluster", { concurrency: 3, timeout: TEST_TIMEOUT_MS * 4 }, () => {
  // First: the longest run (about 3 min on the loaded 2-core node) overlaps all the others.
  it("100,000 output lines reach onLog once each, in order", { timeout: TEST_TIMEOUT_MS * 2 }, async (t) => {
    const ns = await testNamespace(t, "lines100k");
    const n = 100_000;
    const rec = recordingCtx({ config: baseConfig(ns, { retainJobs: true, promptTemplate: `LINES[${n}]` }) });
    const result = await adapter.execute(rec.ctx);
    const transcript = streamedTranscript(rec);
    assertLinesInOrder(transcript, n);
    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(result.exitCode, 0);
    assert.equal(result.summary, `Line ${n} of ${n}.`);
    // About 50 MB of log: the kubelet rotates it at 10 MiB (containerLogMaxSize), so kubectl logs
    // shows only the newest file; it must be the end of what was streamed.
    const log = await podLog(ns, jobNameOf(rec.metas));
    assert.ok(log.length > 0 && transcript.endsWith(log), "the pod's current log file is not the end of the streamed transcript");
  });

  it("runs the real CLI, streams the pod log byte for byte, and resumes the session", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "full", { pvc: true });
    const agentId = uniqueName("agent");
    const config = baseConfig(ns, {
      pvcName: "paperclip-shared",
      retainJobs: true,
      promptTemplate: "Say hello. USE_TOOL CMD[echo e2e-tool-marker]",
    });
    const first = recordingCtx({ config, agentId });
    const result = await adapter.execute(first.ctx);

    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(result.errorMessage, undefined);
    assert.equal(result.exitCode, 0);
    assert.equal(result.signal, null);
    assert.equal(result.timedOut, false);
    assert.deepEqual(first.metas[0].commandArgs, [...BASE_ARGS, "--dangerously-skip-permissions"]);
    assert.equal(first.metas[0].prompt, "Say hello. USE_TOOL CMD[echo e2e-tool-marker]");

    // The transcript on onLog is the claude container's log, byte for byte, once, in order.
    const job = jobNameOf(first.metas);
    const log = await podLog(ns, job);
    assert.equal(streamedTranscript(first), log);
    assert.ok(log.endsWith(`\n${exitMarker(0)}\n`), log.slice(-200));

    // The result is the one the CLI wrote.
    const events = eventsOf(log);
    const init = events.find((e) => e.type === "system" && e.subtype === "init");
    const res = events.findLast((e) => e.type === "result");
    assert.equal(res.is_error, false);
    assert.match(res.result, /e2e-tool-marker/, "the Bash tool really ran in the pod");
    assert.deepEqual(result.resultJson, res);
    assert.equal(result.sessionId, init.session_id);
    assert.equal(res.session_id, init.session_id);
    assert.equal(result.sessionDisplayId, init.session_id);
    assert.deepEqual(result.sessionParams, { sessionId: init.session_id, cwd: "/paperclip" });
    assert.deepEqual(result.usage, {
      inputTokens: res.usage.input_tokens + (res.usage.cache_creation_input_tokens ?? 0),
      outputTokens: res.usage.output_tokens,
      cachedInputTokens: res.usage.cache_read_input_tokens ?? 0,
    });
    assert.ok(result.usage.inputTokens > 0 && result.usage.outputTokens > 0);
    assert.equal(result.usageBasis, "per_run");
    assert.equal(result.costUsd, res.total_cost_usd);
    assert.ok(result.costUsd > 0);
    assert.equal(result.summary, res.result);
    assert.equal(result.model, init.model);
    assert.equal(result.provider, "anthropic");
    assert.equal(result.clearSession ?? false, false);

    // retainJobs keeps the Job (and so its pod and log); the run ends on the CLI's exit line,
    // so the Job's Complete condition may come a moment later.
    await eventually(async () => {
      const kept = await kubectlJson(["get", "job", "-n", ns, job]);
      return kept.status.conditions?.some((c) => c.type === "Complete" && c.status === "True");
    });

    // Second heartbeat of the same agent: Paperclip hands back the first result's sessionParams.
    const second = recordingCtx({
      config: { ...config, promptTemplate: "Say hello again." },
      agentId,
      runtime: { sessionId: result.sessionId, sessionParams: result.sessionParams },
    });
    const resumed = await adapter.execute(second.ctx);
    assert.equal(resumed.errorCode, undefined, resumed.errorMessage);
    assert.equal(resumed.exitCode, 0);
    assert.deepEqual(second.metas[0].commandArgs, [...BASE_ARGS, "--resume", result.sessionId, "--dangerously-skip-permissions"]);
    assert.equal(resumed.sessionId, result.sessionId);
    assert.deepEqual(resumed.sessionParams, result.sessionParams);
    const resumedLog = await podLog(ns, jobNameOf(second.metas));
    assert.equal(streamedTranscript(second), resumedLog);
    // The stand-in API counts the messages it was sent: the resumed turn carried the history.
    const turns = Number(/Turn with (\d+) messages/.exec(resumed.summary)?.[1]);
    assert.ok(turns >= 3, `resumed run sent ${turns} messages: ${resumed.summary}`);
    const requests = (await mockRequests()).filter((r) => r.session === result.sessionId && r.main);
    assert.ok(requests.some((r) => r.prompt.endsWith("Say hello again.")), "no request of the resumed session carried the second prompt");
  });

  // The CLI words API errors itself (testbed/README.md, claude-cli/README.md): for 401 the API's
  // own "invalid x-api-key" is replaced by "Invalid API key", for 529 it quotes "Overloaded".
  for (const [keyword, status, cliText, family] of [
    ["ERR401", 401, "Invalid API key · Fix external API key", undefined],
    ["ERR529", 529, "API Error: 529 Overloaded.", "transient_upstream"],
  ]) {
    it(`API ${status}: claude_run_failed with the CLI's error text, exit 1${family ? `, errorFamily ${family}` : ""}`, { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const ns = await testNamespace(t, `api${status}`);
      const rec = recordingCtx({ config: baseConfig(ns, { promptTemplate: `Fail with ${keyword}.` }) });
      const result = await adapter.execute(rec.ctx);
      assert.equal(result.errorCode, "claude_run_failed");
      assert.equal(result.exitCode, 1);
      assert.equal(result.timedOut, false);
      assert.equal(result.resultJson.is_error, true);
      assert.equal(result.resultJson.subtype, "success");
      assert.equal(result.resultJson.api_error_status, status);
      assert.ok(result.resultJson.result.startsWith(cliText), result.resultJson.result);
      assert.equal(result.errorMessage, `Claude run failed: subtype=success: ${result.resultJson.result}`);
      assert.equal(result.errorFamily, family);
      assert.equal(result.errorMeta?.loginRequired, status === 401 ? true : undefined);
      assert.equal(result.clearSession ?? false, false);
      await assertCleanedUp(ns, rec.ctx.runId);
    });
  }

  it("max turns: maxTurnsPerRun 2 with a looping tool ends error_max_turns with clearSession", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "maxturns");
    const rec = recordingCtx({ config: baseConfig(ns, { maxTurnsPerRun: 2, promptTemplate: "LOOP_TOOL CMD[echo again]" }) });
    const result = await adapter.execute(rec.ctx);
    assert.deepEqual(rec.metas[0].commandArgs, [...BASE_ARGS, "--dangerously-skip-permissions", "--max-turns", "2"]);
    assert.equal(result.errorCode, "claude_run_failed");
    assert.equal(result.exitCode, 1);
    assert.equal(result.clearSession, true);
    assert.equal(result.resultJson.subtype, "error_max_turns");
    assert.equal(result.errorMessage, "Claude run failed: subtype=error_max_turns: Reached maximum number of turns (2)");
    assert.equal(result.errorFamily, undefined);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("unknown session: session_unavailable with clearSession", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "nosession", { pvc: true });
    const sessionId = randomUUID();
    const rec = recordingCtx({
      config: baseConfig(ns, { pvcName: "paperclip-shared" }),
      runtime: { sessionId: null, sessionParams: { sessionId, cwd: "/paperclip" } },
    });
    const result = await adapter.execute(rec.ctx);
    assert.deepEqual(rec.metas[0].commandArgs, [...BASE_ARGS, "--resume", sessionId, "--dangerously-skip-permissions"]);
    assert.equal(result.errorCode, "session_unavailable");
    assert.equal(result.clearSession, true);
    assert.equal(result.exitCode, 1);
    assert.equal(result.errorMessage, `Claude run failed: subtype=error_during_execution: No conversation found with session ID: ${sessionId}`);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  // Two places the Job's deadline can strike: a 1 s deadline fires while the pod is still starting
  // (init container; the issue's 3 s lands on either side of the CLI's start on this node), a 12 s
  // one while Claude streams. Both must end `timeout`. The ctx carries the test's own AbortSignal as Paperclip's signal, so a run that
  // hangs is cancelled (and its Job deleted) when the test times out.
  for (const [timeoutSec, when] of [[1, "while the pod starts"], [12, "while Claude streams"]]) {
    it(`timeout: timeoutSec ${timeoutSec} on a slow answer (${when}) is \`timeout\` with timedOut and the Job deleted`, { timeout: 120_000 }, async (t) => {
      const ns = await testNamespace(t, `timeout${timeoutSec}`);
      const rec = recordingCtx({
        config: baseConfig(ns, { timeoutSec, promptTemplate: "Take your time. SLOW[60]" }),
        extra: { signal: t.signal, onCancellationReady: async () => {} },
      });
      const result = await adapter.execute(rec.ctx);
      assert.equal(result.errorCode, "timeout", result.errorMessage);
      assert.equal(result.timedOut, true);
      assert.ok(rec.metas[0].commandNotes.includes(`timeout: ${timeoutSec} s (+60 s grace)`));
      const job = await kubectl(["get", "job", "-n", ns, jobNameOf(rec.metas), "--ignore-not-found", "-o", "name"]);
      assert.equal(job, "", "the timed-out Job was not deleted");
      await assertCleanedUp(ns, rec.ctx.runId);
    });
  }

  it("an image that does not exist: k8s_pod_schedule_failed naming ErrImagePull and the image", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "noimage");
    const image = "paperclip/no-such-image:e2e";
    const rec = recordingCtx({ config: baseConfig(ns, { image }) });
    const result = await adapter.execute(rec.ctx);
    assert.equal(result.errorCode, "k8s_pod_schedule_failed");
    assert.match(result.errorMessage, /ErrImagePull|ImagePullBackOff/);
    assert.ok(result.errorMessage.includes(image), result.errorMessage);
    assertNoClaudeResult(result);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("an unschedulable pod: k8s_pod_schedule_failed naming Unschedulable", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "unsched");
    const rec = recordingCtx({ config: baseConfig(ns, { nodeSelector: { "e2e.paperclip.io/nowhere": "true" } }) });
    const result = await adapter.execute(rec.ctx);
    assert.equal(result.errorCode, "k8s_pod_schedule_failed");
    assert.match(result.errorMessage, /Unschedulable/);
    assert.match(result.errorMessage, /0\/1 nodes are available: 1 node\(s\) didn't match Pod's node affinity/);
    assertNoClaudeResult(result);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("a service account that does not exist: k8s_pod_schedule_failed naming the Job controller's reason", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "nosa");
    const rec = recordingCtx({ config: baseConfig(ns, { serviceAccountName: "no-such-sa" }) });
    const result = await adapter.execute(rec.ctx);
    assert.equal(result.errorCode, "k8s_pod_schedule_failed");
    // The Job controller cannot create the pod; its FailedCreate event says why.
    assert.ok(result.errorMessage.includes('serviceaccount "no-such-sa" not found'), result.errorMessage);
    assertNoClaudeResult(result);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("a prompt full of shell syntax and non-ASCII text reaches the container and the API byte for byte", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "quotes", { pvc: true });
    const prompt = [
      `Quotes: 'single' "double" \`backticks\` $(echo command-substitution) \${HOME} $HOME %s %n \\n \\ backslash`,
      "Newlines:\n\nblank line above, a tab\there, a carriage return\r in the middle",
      "Non-ASCII: héllo wörld ✓ 日本語 Ελληνικά עברית 🚀👩‍💻 \u00a0nbsp \u200bzwsp",
      "Glob * ? [abc] ; && || | > < & #comment",
      // The file's hash and size, from inside the pod, by the real CLI's Bash tool.
      "USE_TOOL CMD[sha256sum /var/run/paperclip/prompt; wc -c < /var/run/paperclip/prompt]",
    ].join("\n");
    const rec = recordingCtx({ config: baseConfig(ns, { pvcName: "paperclip-shared", promptTemplate: prompt }) });
    const result = await adapter.execute(rec.ctx);
    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(rec.metas[0].prompt, prompt);
    await assertPromptArrived(ns, rec, result, prompt);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("a 2 MiB prompt arrives byte for byte through three Secrets owned by the Job, all deleted afterwards", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "bigprompt", { pvc: true });
    const filler = randomBytes(1024 * 1024).toString("hex"); // 2 MiB of [0-9a-f]: no mock keyword
    const prompt = `${filler}\nSLOW[4] USE_TOOL CMD[sha256sum /var/run/paperclip/prompt; wc -c < /var/run/paperclip/prompt]`;
    const rec = recordingCtx({ config: baseConfig(ns, { pvcName: "paperclip-shared", promptTemplate: prompt }) });
    const run = adapter.execute(rec.ctx);

    // While the run goes on: the prompt Secrets exist and are owned by the Job.
    const owned = await eventually(async () => {
      if (rec.metas.length === 0) return undefined;
      const job = jobNameOf(rec.metas);
      const jobs = await kubectlJson(["get", "jobs", "-n", ns, "-l", runSelector(rec.ctx.runId)]);
      if (jobs.items.length !== 1) return undefined;
      const secrets = (await kubectlJson(["get", "secrets", "-n", ns, "-l", runSelector(rec.ctx.runId)])).items;
      if (!secrets.every((s) => s.metadata.ownerReferences?.length)) return undefined;
      return { job: jobs.items[0], secrets, jobName: job };
    });
    assert.deepEqual(owned.secrets.map((s) => s.metadata.name).sort(), [0, 1, 2].map((n) => `${owned.jobName}-${n}`));
    for (const secret of owned.secrets) {
      assert.deepEqual(secret.metadata.ownerReferences, [{
        apiVersion: "batch/v1",
        kind: "Job",
        name: owned.jobName,
        uid: owned.job.metadata.uid,
        controller: false,
        blockOwnerDeletion: true,
      }]);
    }

    const result = await run;
    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(rec.metas[0].prompt, prompt);
    await assertPromptArrived(ns, rec, result, prompt);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("10,000 lines while every apiserver connection is cut twice mid-stream: the pod log, byte for byte", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "cut");
    const proxy = await apiProxy(t);
    const n = 10_000;
    const rec = recordingCtx({ config: baseConfig(ns, { kubeconfig: proxy.kubeconfig, retainJobs: true, promptTemplate: `LINES[${n}]` }) });
    const cutAfter = new Set([n / 4, n / 2]);
    const cut = [];
    const record = rec.ctx.onLog;
    let assistantLines = 0;
    rec.ctx.onLog = async (stream, chunk) => {
      await record(stream, chunk);
      if (stream !== "stdout") return;
      // A chunk may hold many lines (the adapter reads ahead of onLog): count them one by one.
      for (const line of chunk.split("\n")) {
        if (!line.startsWith('{"type":"assistant"')) continue;
        assistantLines += 1;
        if (cutAfter.has(assistantLines)) cut.push(proxy.cut());
      }
    };
    const result = await adapter.execute(rec.ctx);
    assert.equal(cut.length, 2);
    assert.ok(cut.every((connections) => connections > 0), `connections cut: ${cut}`);
    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(result.exitCode, 0);
    const transcript = streamedTranscript(rec);
    assertLinesInOrder(transcript, n);
    assert.equal(transcript, await podLog(ns, jobNameOf(rec.metas)));
  });

  it("a prompt over 8 MiB is refused with k8s_config_invalid before anything is created", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "hugeprompt");
    const prompt = "x".repeat(8 * 1024 * 1024 + 1);
    const rec = recordingCtx({ config: baseConfig(ns, { promptTemplate: prompt }) });
    const result = await adapter.execute(rec.ctx);
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.match(result.errorMessage, /8388609/);
    assert.equal(rec.metas.length, 0);
    assertNoClaudeResult(result);
    await assertCleanedUp(ns, rec.ctx.runId);
  });

  it("every config key with a wrong type: one stderr line naming each key, then a run with the defaults", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "wrongtypes");
    const wrong = {
      model: 7,
      effort: false,
      maxTurnsPerRun: "2",
      dangerouslySkipPermissions: "yes",
      instructionsFilePath: 3,
      extraArgs: 5,
      promptTemplate: 5,
      bootstrapPromptTemplate: ["a"],
      cwd: true,
      imagePullPolicy: 1,
      serviceAccountName: {},
      resources: "small",
      nodeSelector: 5,
      tolerations: 5,
      labels: 5,
      ttlSecondsAfterFinished: "300",
      retainJobs: "no",
      reattachOrphanedJobs: "yes",
      timeoutSec: -1,
      graceSec: "60",
      secretRef: 9,
      pvcName: 12,
    };
    const config = {
      ...baseConfig(ns),
      ...wrong,
      // The nested `resources` is wrong; the flat dotted keys the UI stores still apply.
      "resources.requests.cpu": "50m",
      "resources.requests.memory": "64Mi",
      "resources.limits.cpu": "1",
      "resources.limits.memory": "1Gi",
      env: { ...baseConfig(ns).env, E2E_NUMBER: 5 },
    };
    const agentId = uniqueName("agent");
    const rec = recordingCtx({ config, agentId });
    const result = await adapter.execute(rec.ctx);

    const stderr = rec.text("stderr").split("\n").filter(Boolean);
    for (const key of [...Object.keys(wrong), "env.E2E_NUMBER"]) {
      const lines = stderr.filter((line) => line.includes(`config key \`${key}\`: `));
      assert.equal(lines.length, 1, `stderr lines naming ${key}: ${JSON.stringify(lines)}`);
      assert.match(lines[0], /^\[claude_k8s\] config key .*expected .*, got .*; (using|variable not set)/);
    }
    // The run goes on with the defaults and succeeds.
    assert.equal(result.errorCode, undefined, result.errorMessage);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(rec.metas[0].commandArgs, [...BASE_ARGS, "--dangerously-skip-permissions"]);
    assert.equal(rec.metas[0].prompt, `You are agent ${agentId} (E2E Agent). Continue your Paperclip work.`);
    assert.ok(rec.metas[0].commandNotes.includes("working directory: /paperclip"));
    assert.ok(rec.metas[0].commandNotes.includes("timeout: none"));
    assert.match(result.summary, /^Hello from mock\./);
    await assertCleanedUp(ns, rec.ctx.runId); // retainJobs fell back to false
  });

  it("wrong types for the cluster keys: each named on stderr, the defaults used, and no image is a clear k8s_config_invalid", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "wrongcluster");
    // kubeconfig falls back to $KUBECONFIG, namespace to its context's namespace (this test's).
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = await kubeconfigCopy(t, { namespace: ns });
    t.after(() => {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    });
    const wrong = { kubeconfig: 5, namespace: 5, image: 5, hostNetwork: "yes" };
    const rec = recordingCtx({ config: { ...baseConfig(ns), ...wrong } });
    const result = await adapter.execute(rec.ctx);
    const stderr = rec.text("stderr").split("\n").filter(Boolean);
    for (const key of Object.keys(wrong)) {
      const lines = stderr.filter((line) => line.includes(`config key \`${key}\`: `));
      assert.equal(lines.length, 1, `stderr lines naming ${key}: ${JSON.stringify(stderr)}`);
      assert.match(lines[0], /^\[claude_k8s\] config key .*expected a (string|boolean), got .*; using /);
    }
    // Outside a pod there is no image to inherit: the run stops before creating anything.
    assert.equal(result.errorCode, "k8s_config_invalid", result.errorMessage);
    assert.match(result.errorMessage, /image/);
    assert.equal(rec.metas.length, 0);
    assert.deepEqual(await names("jobs,secrets", ns, runSelector(rec.ctx.runId)), []);
  });

  it("cancellation through the AbortSignal ends `cancelled` within 5 s and deletes the Job", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "cancel");
    const controller = new AbortController();
    let readyCalls = 0;
    const rec = recordingCtx({
      config: baseConfig(ns, { promptTemplate: "Take your time. SLOW[30]" }),
      extra: { signal: controller.signal, onCancellationReady: async () => { readyCalls += 1; } },
    });
    const run = adapter.execute(rec.ctx);
    await eventually(() => rec.logs.some(([stream, chunk]) => stream === "stdout" && chunk.includes('{"type":"assistant"')));
    const job = jobNameOf(rec.metas);
    const abortedAt = performance.now();
    controller.abort();
    const result = await run;
    const elapsedMs = performance.now() - abortedAt;

    assert.equal(readyCalls, 1);
    assert.equal(result.errorCode, "cancelled", result.errorMessage);
    // The issue's explicit bound (Paperclip's cancel path waits this long); no tighter timing.
    assert.ok(elapsedMs < 5000, `cancel took ${Math.round(elapsedMs)} ms`);
    assert.equal(await kubectl(["get", "job", "-n", ns, job, "--ignore-not-found", "-o", "name"]), "");
    await assertCleanedUp(ns, rec.ctx.runId);
    assert.equal(result.resultJson?.executionCancellation?.state, "acknowledged");
  });

  it("a second execute for the same agent while its Job runs is blocked as SPEC §6 says", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "guard");
    const agentId = uniqueName("agent");
    const config = baseConfig(ns, { promptTemplate: "Take your time. SLOW[60]" });
    const controller = new AbortController();
    const first = recordingCtx({
      config,
      agentId,
      context: { taskId: "task-a" },
      extra: { signal: controller.signal, onCancellationReady: async () => {} },
    });
    const run = adapter.execute(first.ctx);
    await eventually(() => first.logs.some(([stream, chunk]) => stream === "stdout" && chunk.includes('{"type":"assistant"')));
    const job = jobNameOf(first.metas);

    const attempt = async (options) => {
      const rec = recordingCtx({ config, agentId, ...options });
      const result = await adapter.execute(rec.ctx);
      assert.equal(rec.metas.length, 0, "a blocked run announced a Job");
      return result;
    };
    // reattachOrphanedJobs off: any live Job of the agent blocks.
    const off = await attempt({ context: { taskId: "task-a" }, config: { ...config, reattachOrphanedJobs: false } });
    assert.equal(off.errorCode, "k8s_concurrent_run_blocked", off.errorMessage);
    assert.ok(off.errorMessage.includes(job), off.errorMessage);
    // On (the default): a run without a task cannot be matched to the live Job's task.
    const noTask = await attempt({ context: {} });
    assert.equal(noTask.errorCode, "k8s_orphan_task_unknown", noTask.errorMessage);
    // A different task blocks.
    const otherTask = await attempt({ context: { taskId: "task-b" } });
    assert.equal(otherTask.errorCode, "k8s_concurrent_run_blocked", otherTask.errorMessage);
    assert.ok(otherTask.errorMessage.includes(job), otherTask.errorMessage);
    // The same run id again blocks too.
    const sameRun = await attempt({ runId: first.ctx.runId, context: { taskId: "task-a" } });
    assert.equal(sameRun.errorCode, "k8s_concurrent_run_blocked", sameRun.errorMessage);

    assert.deepEqual(await names("jobs", ns, `paperclip.io/agent-id=${agentId}`), [job], "blocked runs must not create or delete Jobs");
    controller.abort();
    const result = await run;
    assert.equal(result.errorCode, "cancelled", result.errorMessage);
    await assertCleanedUp(ns, first.ctx.runId);
  });

  it("a second execute for the same agent and task while its Job runs reattaches to that Job (SPEC §6)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const ns = await testNamespace(t, "reattach");
    const agentId = uniqueName("agent");
    const config = baseConfig(ns, { retainJobs: true, promptTemplate: "Take your time. SLOW[8]" });
    const first = recordingCtx({ config, agentId, context: { taskId: "task-r" } });
    const firstRun = adapter.execute(first.ctx);
    await eventually(() => first.logs.some(([stream, chunk]) => stream === "stdout" && chunk.includes('{"type":"assistant"')));
    const job = jobNameOf(first.metas);

    const second = recordingCtx({ config, agentId, context: { taskId: "task-r" } });
    const [firstResult, secondResult] = await Promise.all([firstRun, adapter.execute(second.ctx)]);
    assert.equal(second.metas.length, 0, "a reattaching run creates no Job");
    const [pod] = await names("pods", ns, `job-name=${job}`);
    const stdout = second.logs.filter(([stream]) => stream === "stdout").map(([, chunk]) => chunk);
    assert.equal(stdout[0], `[claude_k8s] reattached to running Job ${job} (pod ${pod}) left by an earlier run\n`);
    // It follows the orphan's log from the start: the whole pod log, once.
    const log = await podLog(ns, job);
    assert.equal(stdout.slice(1).filter((chunk) => !KEEPALIVE_LINE.test(chunk)).join(""), log);
    assert.equal(streamedTranscript(first), log);
    for (const result of [firstResult, secondResult]) {
      assert.equal(result.errorCode, undefined, result.errorMessage);
      assert.equal(result.exitCode, 0);
    }
    assert.equal(secondResult.sessionId, firstResult.sessionId);
    assert.equal(secondResult.summary, firstResult.summary);
    // The Job now carries the second run's id.
    const relabelled = await kubectlJson(["get", "job", "-n", ns, job]);
    assert.equal(relabelled.metadata.labels["paperclip.io/run-id"], second.ctx.runId);
  });
});

/**
 * The prompt reached the container as the file the CLI reads (its sha256 and size, printed by the
 * Bash tool inside the pod, as streamed) and the CLI sent it to the API unchanged: the session file the CLI
 * wrote on the PVC holds the user message, and the stand-in API logged its last 300 characters
 * for this session.
 */
async function assertPromptArrived(ns, rec, result, prompt) {
  const bytes = Buffer.from(prompt, "utf8");
  const toolResult = eventsOf(streamedTranscript(rec))
    .filter((e) => e.type === "user")
    .flatMap((e) => e.message.content)
    .find((block) => block.type === "tool_result");
  const content = typeof toolResult.content === "string" ? toolResult.content : toolResult.content.map((b) => b.text).join("");
  const sha = createHash("sha256").update(bytes).digest("hex");
  assert.equal(content, `${sha}  /var/run/paperclip/prompt\n${bytes.length}`);

  const dir = join(pvcHostDir(ns), ".claude", "projects", "-paperclip");
  const file = (await readdir(dir)).find((name) => name === `${result.sessionId}.jsonl`);
  assert.ok(file, `no session file for ${result.sessionId} in ${dir}`);
  const entries = (await readFile(join(dir, file), "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const userTexts = entries
    .filter((e) => e.type === "user" && e.message?.role === "user")
    .flatMap((e) => (typeof e.message.content === "string" ? [e.message.content] : e.message.content.filter((b) => b.type === "text").map((b) => b.text)));
  assert.ok(userTexts.includes(prompt), `the CLI's session holds no user text equal to the prompt (${userTexts.length} texts)`);

  const requests = (await mockRequests()).filter((r) => r.session === result.sessionId && r.main);
  assert.ok(requests.length > 0, `the stand-in API logged no request of session ${result.sessionId}`);
  // The mock (Python) keeps the last 300 code points, not UTF-16 units.
  assert.equal(requests[0].prompt, [...prompt].slice(-300).join(""));
}
