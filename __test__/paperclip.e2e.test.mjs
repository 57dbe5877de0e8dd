// End to end: the packed adapter inside real Paperclip servers from npm, running Claude Code Jobs on
// the testbed cluster (SPEC §1, §3, §5 step 11, §8).
//
// Needs, as root: e2e/paperclip/install.sh (both servers and the `paperclip` user), testbed/up (the
// cluster, the agent image and the stand-in Anthropic API), and the packed adapter: $ADAPTER_TGZ,
// else ./paperclip-claude-k8s-<version>.tgz, else `npm pack` is run here.
// Each server runs alone (ports 3100 and 54329 are fixed by onboarding), as user `paperclip`, and is
// stopped by its PID, embedded PostgreSQL included.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startServer, SERVER_USER, VERSIONS } from "../e2e/paperclip/server.mjs";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const TESTBED_DIR = process.env.TESTBED_DIR ?? "/var/tmp/paperclip-claude-k8s-testbed";
const ADMIN_KUBECONFIG = path.join(TESTBED_DIR, "run/admin.kubeconfig");
const PVC_SCRIPT = path.join(root, "testbed/pvc.sh");
/** The periodic reaper's staleness window, hard-coded in both servers (index.js: 5 * 60 * 1000). */
const STALE_RUN_WINDOW_SEC = 300;
/** The fastest scheduler tick the servers accept (config: max(10000, HEARTBEAT_SCHEDULER_INTERVAL_MS)). */
const SCHEDULER_INTERVAL_MS = 10_000;
/** How long the slow run streams: past the stale window plus a few reaper ticks. */
const LONG_RUN_SEC = STALE_RUN_WINDOW_SEC + 40;
/** SPEC §4's default heartbeat prompt: no keyword for the stand-in API, so a plain answer. */
const DEFAULT_PROMPT_TEMPLATE = "You are agent {{agent.id}} ({{agent.name}}). Continue your Paperclip work.";
/** Poll interval while waiting for server or cluster state; waits are bounded by each test's timeout. */
const POLL_MS = 500;
/** Bounds (not assertions) so a broken server or cluster fails the run instead of hanging it. */
const SETUP_TIMEOUT_MS = 10 * 60_000;
const RUN_TIMEOUT_MS = 10 * 60_000;
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "interrupted"]);

function kubectl(...args) {
  return execFileSync("kubectl", ["--kubeconfig", ADMIN_KUBECONFIG, ...args], { encoding: "utf8" });
}

function adapterTarball() {
  if (process.env.ADAPTER_TGZ) return path.resolve(process.env.ADAPTER_TGZ);
  const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  const packed = path.join(root, `paperclip-claude-k8s-${version}.tgz`);
  if (fs.existsSync(packed)) return packed;
  const name = execFileSync("npm", ["pack", "--silent"], { cwd: root, encoding: "utf8" }).trim().split("\n").at(-1);
  return path.join(root, name);
}

/** Polls until probe() is truthy; each test's timeout bounds the wait. */
async function until(probe) {
  for (;;) {
    const value = await probe();
    if (value) return value;
    await sleep(POLL_MS);
  }
}

/**
 * stdout of a run as lines, from the server's ndjson log ({ts, stream, chunk} per onLog call).
 * A run that has not logged yet has no log (404): no lines.
 */
async function runLogLines(server, runId) {
  const log = await server.api("GET", `/api/heartbeat-runs/${runId}/log`);
  if (log.status === 404) return [];
  assert.equal(log.status, 200, JSON.stringify(log.body));
  return log.body.content
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.stream === "stdout")
    .map((entry) => entry.chunk)
    .join("")
    .split("\n");
}

function jsonEvents(lines) {
  return lines.flatMap((line) => {
    try {
      const event = JSON.parse(line);
      return event && typeof event === "object" ? [event] : [];
    } catch {
      return [];
    }
  });
}

function jobsOfRun(namespace, runId) {
  const list = JSON.parse(kubectl("get", "jobs", "-n", namespace, "-l", `paperclip.io/run-id=${runId}`, "-o", "json"));
  return list.items;
}

for (const version of VERSIONS) {
  describe(`paperclipai@${version}`, () => {
    let server;
    let namespace;
    let companyId;
    let agentId;
    let adapterConfig;
    let firstRun;

    const getRun = async (id) => (await server.api("GET", `/api/heartbeat-runs/${id}`)).body;
    const finished = (id) => until(async () => {
      const run = await getRun(id);
      return TERMINAL.has(run.status) ? run : null;
    });
    const agentIdle = () => until(async () => {
      const runs = await server.api("GET", `/api/companies/${companyId}/heartbeat-runs?agentId=${agentId}`);
      return runs.body.every((run) => TERMINAL.has(run.status));
    });
    const configure = async (changes) => {
      adapterConfig = { ...adapterConfig, ...changes };
      const patched = await server.api("PATCH", `/api/agents/${agentId}`, { adapterConfig });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
    };
    const wake = async (reason) => {
      const woken = await server.api("POST", `/api/agents/${agentId}/wakeup`, {
        source: "on_demand",
        triggerDetail: "manual",
        reason,
      });
      assert.equal(woken.status, 202, JSON.stringify(woken.body));
      return woken.body.id;
    };

    before(async () => {
      assert.ok(fs.existsSync(ADMIN_KUBECONFIG), `no testbed cluster: ${ADMIN_KUBECONFIG} missing (run testbed/up)`);
      const tarball = adapterTarball();
      server = await startServer(version, { env: { HEARTBEAT_SCHEDULER_INTERVAL_MS: String(SCHEDULER_INTERVAL_MS) } });
      console.error(`paperclipai@${version} ready in ${server.startMs} ms (pid ${server.pid})`);
      // The server runs as an unprivileged user: hand it copies it can read.
      const uid = Number(execFileSync("id", ["-u", SERVER_USER], { encoding: "utf8" }));
      const kubeconfig = path.join(server.dataDir, "kubeconfig");
      fs.copyFileSync(ADMIN_KUBECONFIG, kubeconfig);
      const packageFile = path.join(server.dataDir, path.basename(tarball));
      fs.copyFileSync(tarball, packageFile);
      for (const file of [kubeconfig, packageFile]) fs.chownSync(file, uid, -1);

      namespace = `pc-e2e-${version.replaceAll(".", "-")}-${crypto.randomBytes(3).toString("hex")}`;
      execFileSync(PVC_SCRIPT, [namespace], { encoding: "utf8" });
      kubectl("create", "secret", "generic", "paperclip-secrets", "-n", namespace, "--from-literal=placeholder=1");

      const installed = await server.api("POST", "/api/adapters/install", {
        packageName: "paperclip-claude-k8s",
        version: `file:${packageFile}`,
      });
      assert.equal(installed.status, 201, JSON.stringify(installed.body));
      assert.equal(installed.body.type, "claude_k8s");

      const company = await server.api("POST", "/api/companies", { name: `claude_k8s e2e ${version}` });
      assert.equal(company.status, 201, JSON.stringify(company.body));
      companyId = company.body.id;
      adapterConfig = {
        kubeconfig,
        namespace,
        image: "paperclip/claude-agent:dev",
        imagePullPolicy: "IfNotPresent",
        hostNetwork: true,
        pvcName: "paperclip-shared",
        env: {
          ANTHROPIC_BASE_URL: "http://127.0.0.1:18765",
          ANTHROPIC_API_KEY: "test",
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
          CLAUDE_CODE_MAX_RETRIES: "0",
        },
      };
      const agent = await server.api("POST", `/api/companies/${companyId}/agents`, {
        name: "k8s-agent",
        role: "engineer",
        adapterType: "claude_k8s",
        adapterConfig,
        // The servers default to 20 concurrent runs per agent; one at a time keeps the server's own
        // follow-up runs from racing the test's wakes into the adapter's concurrency guard.
        runtimeConfig: { heartbeat: { maxConcurrentRuns: 1 } },
      });
      assert.equal(agent.status, 201, JSON.stringify(agent.body));
      agentId = agent.body.id;
    }, { timeout: SETUP_TIMEOUT_MS });

    after(async () => {
      if (server) {
        const stopped = await server.stop();
        console.error(`paperclipai@${version} (pid ${server.pid}) stopped: ${JSON.stringify(stopped)}`);
      }
      if (namespace) kubectl("delete", "namespace", namespace, "--wait=false");
    });

    test("the adapter is registered with its UI parser", async () => {
      const adapters = await server.api("GET", "/api/adapters");
      const ours = adapters.body.find((adapter) => adapter.type === "claude_k8s");
      assert.equal(ours?.loaded, true, JSON.stringify(ours));
      assert.equal(ours.capabilities.supportsLocalAgentJwt, true);
      const parser = await server.api("GET", "/api/adapters/claude_k8s/ui-parser.js");
      assert.equal(parser.status, 200);
      assert.equal(parser.body, fs.readFileSync(path.join(root, "ui-parser.js"), "utf8"));
    });

    test("the environment test passes", { timeout: RUN_TIMEOUT_MS }, async () => {
      const result = await server.api("POST", `/api/companies/${companyId}/adapters/claude_k8s/test-environment`, {
        adapterConfig,
      });
      assert.equal(result.status, 200, JSON.stringify(result.body));
      assert.equal(result.body.status, "pass", JSON.stringify(result.body.checks, null, 1));
      assert.ok(result.body.checks.some((check) => check.code === "k8s_api_reachable"));
    });

    test("a woken agent's run succeeds with its transcript, usage, cost and session recorded", { timeout: RUN_TIMEOUT_MS }, async () => {
      firstRun = await finished(await wake("e2e first wake"));
      assert.equal(firstRun.status, "succeeded", `${firstRun.errorCode}: ${firstRun.error}`);
      const events = jsonEvents(await runLogLines(server, firstRun.id));
      const init = events.find((event) => event.type === "system" && event.subtype === "init");
      const result = events.findLast((event) => event.type === "result");
      assert.ok(init && result, "the log holds Claude's init and result events");
      assert.match(result.result, /Hello from mock\. Turn with \d+ messages\./);
      assert.equal(firstRun.sessionIdAfter, init.session_id);
      assert.equal(firstRun.usageJson.inputTokens, result.usage.input_tokens);
      assert.equal(firstRun.usageJson.outputTokens, result.usage.output_tokens);
      assert.equal(firstRun.usageJson.costUsd, result.total_cost_usd);
      assert.ok(firstRun.usageJson.costUsd > 0);
      assert.equal(firstRun.usageJson.provider, "anthropic");
      assert.equal(firstRun.exitCode, 0);
    });

    test("a second wake resumes the session", { timeout: RUN_TIMEOUT_MS }, async () => {
      await agentIdle();
      const second = await finished(await wake("e2e second wake"));
      assert.equal(second.status, "succeeded", `${second.errorCode}: ${second.error}`);
      assert.equal(second.sessionIdBefore, firstRun.sessionIdAfter);
      assert.equal(second.sessionIdAfter, firstRun.sessionIdAfter);
      const turns = async (run) => {
        const result = jsonEvents(await runLogLines(server, run.id)).findLast((event) => event.type === "result");
        return Number(/Turn with (\d+) messages/.exec(result.result)[1]);
      };
      assert.ok((await turns(second)) > (await turns(firstRun)), "the resumed conversation carries the first turn");
    });

    test("a cancel through the API ends the run cancelled and deletes its Job", { timeout: RUN_TIMEOUT_MS }, async () => {
      await agentIdle();
      await configure({ promptTemplate: "SLOW[600] You are agent {{agent.id}}. Take your time." });
      const runId = await wake("e2e cancel");
      await until(async () =>
        TERMINAL.has((await getRun(runId)).status) ||
        (await runLogLines(server, runId)).some((line) => line.includes("Slow part")),
      );
      const streaming = await getRun(runId);
      assert.equal(streaming.status, "running", `${streaming.errorCode}: ${streaming.error}`);
      assert.equal(jobsOfRun(namespace, runId).length, 1);
      const cancel = await server.api("POST", `/api/heartbeat-runs/${runId}/cancel`, {});
      assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
      assert.equal(cancel.body.status, "cancelled");
      const run = await finished(runId);
      assert.equal(run.status, "cancelled");
      assert.equal(run.errorCode, "cancelled");
      await until(() => jobsOfRun(namespace, runId).length === 0);
    });

    test("a run longer than the stale-run window is not reaped while its Job lives", { timeout: RUN_TIMEOUT_MS + LONG_RUN_SEC * 1000 }, async () => {
      await agentIdle();
      await configure({ promptTemplate: `SLOW[${LONG_RUN_SEC}] You are agent {{agent.id}}. Take your time.` });
      const runId = await wake("e2e long run");
      await until(async () => jobsOfRun(namespace, runId).length === 1 || TERMINAL.has((await getRun(runId)).status));
      const starting = await getRun(runId);
      assert.equal(jobsOfRun(namespace, runId).length, 1, `no Job: run ${starting.status} ${starting.errorCode}: ${starting.error}`);
      const run = await finished(runId);
      assert.equal(run.status, "succeeded", `${run.errorCode}: ${run.error}`);
      const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
      assert.ok(seconds > STALE_RUN_WINDOW_SEC, `the run lasted ${seconds} s, not past the ${STALE_RUN_WINDOW_SEC} s window`);
      const events = await server.api("GET", `/api/heartbeat-runs/${runId}/events`);
      assert.ok(!JSON.stringify(events.body).includes("process_lost"), "no process-loss event");
    });

    // Last: the server follows an issue run with disposition runs of its own, which would queue
    // ahead of a later test's wake.
    test("an issue assigned to the agent gets the run's summary as its comment", { timeout: RUN_TIMEOUT_MS }, async () => {
      await agentIdle();
      await configure({ promptTemplate: DEFAULT_PROMPT_TEMPLATE });
      const issue = await server.api("POST", `/api/companies/${companyId}/issues`, {
        title: "e2e: say hello",
        description: "Reply with a greeting.",
        assigneeAgentId: agentId,
        status: "todo",
      });
      assert.equal(issue.status, 201, JSON.stringify(issue.body));
      const issueRun = await until(async () => {
        const runs = await server.api("GET", `/api/companies/${companyId}/heartbeat-runs?agentId=${agentId}`);
        return runs.body.find((run) => run.contextSnapshot?.issueId === issue.body.id && run.invocationSource === "assignment");
      });
      const run = await finished(issueRun.id);
      assert.equal(run.status, "succeeded", `${run.errorCode}: ${run.error}`);
      const comment = await until(async () => {
        const comments = await server.api("GET", `/api/issues/${issue.body.id}/comments`);
        return comments.body.find((c) => c.authorAgentId === agentId && c.createdByRunId === run.id);
      });
      assert.equal(comment.body, run.resultJson.summary);
      assert.match(comment.body, /Hello from mock/);
    });
  });
}
