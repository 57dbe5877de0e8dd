// Shared helpers for end-to-end tests against the local testbed cluster (testbed/README.md):
// the admin kubeconfig, one namespace per test (optionally with the shared PVC), the base adapter
// config that reaches the stand-in Anthropic API, a ctx that records every callback the way
// Paperclip's server receives them, and kubectl wrappers to look at what the adapter left behind.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository root (this file is `__test__/helpers/testbed.mjs`). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The testbed's state dir (`TESTBED_DIR` in testbed/lib.sh). */
export const TESTBED_DIR = process.env.TESTBED_DIR ?? "/var/tmp/paperclip-claude-k8s-testbed";

/** The admin kubeconfig: `$PAPERCLIP_K8S_TEST_KUBECONFIG`, else the testbed's. */
export const KUBECONFIG =
  process.env.PAPERCLIP_K8S_TEST_KUBECONFIG ?? join(TESTBED_DIR, "run", "admin.kubeconfig");

/** The stand-in API's request log (one JSON line per request). */
export const MOCK_LOG = join(TESTBED_DIR, "run", "mock-requests.jsonl");

/** The agent image holding the real Claude Code CLI. */
export const AGENT_IMAGE = "paperclip/claude-agent:dev";

/** Small requests so several agent pods fit on the testbed's 2-CPU node. */
export const SMALL_RESOURCES = {
  requests: { cpu: "50m", memory: "64Mi" },
  limits: { cpu: "1", memory: "1Gi" },
};

/** Env that points the CLI at the stand-in API (pods reach it through hostNetwork). */
export const MOCK_ENV = {
  ANTHROPIC_BASE_URL: "http://127.0.0.1:18765",
  ANTHROPIC_API_KEY: "testbed",
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
  CLAUDE_CODE_MAX_RETRIES: "0",
};

/** Throws unless the testbed cluster answers: tests must fail loudly, never skip. */
export async function requireTestbed() {
  if (!existsSync(KUBECONFIG)) {
    throw new Error(`no testbed kubeconfig at ${KUBECONFIG}: run testbed/up first`);
  }
  await kubectl(["get", "--raw", "/readyz"]);
}

/** Runs kubectl with the admin kubeconfig; resolves with stdout (no trimming). */
export async function kubectl(args, { input } = {}) {
  const child = run("kubectl", ["--kubeconfig", KUBECONFIG, ...args], {
    maxBuffer: 512 * 1024 * 1024,
    encoding: "utf8",
  });
  if (input !== undefined) child.child.stdin.end(input);
  const { stdout } = await child;
  return stdout;
}

/** kubectl `get -o json`, parsed. */
export async function kubectlJson(args) {
  return JSON.parse(await kubectl([...args, "-o", "json"]));
}

/** A fresh name: `<prefix>-<6 hex>`, a valid namespace and label value. */
export function uniqueName(prefix) {
  return `${prefix}-${randomBytes(3).toString("hex")}`;
}

/**
 * Creates a namespace for one test (with the `paperclip-shared` PVC when `pvc`), and registers
 * its deletion (and the PV's, and its host directory's) with `t.after`. Returns the namespace name.
 */
export async function testNamespace(t, prefix, { pvc = false } = {}) {
  const ns = uniqueName(`e2e-${prefix}`);
  if (pvc) {
    await run(join(REPO, "testbed", "pvc.sh"), [ns], { env: { ...process.env, TESTBED_DIR } });
  } else {
    await kubectl(["create", "namespace", ns]);
  }
  t.after(async () => {
    await kubectl(["delete", "namespace", ns, "--wait=false", "--ignore-not-found"]);
    if (pvc) {
      await kubectl(["delete", "pv", `testbed-${ns}-paperclip-shared`, "--wait=false", "--ignore-not-found"]);
      await rm(pvcHostDir(ns), { recursive: true, force: true });
    }
  });
  return ns;
}

/** The host directory behind a namespace's `paperclip-shared` PVC (the pod's `/paperclip`). */
export function pvcHostDir(ns) {
  return join(TESTBED_DIR, "volumes", `${ns}-paperclip-shared`);
}

/** The adapter config every test starts from: testbed image, mock API, small resources. */
export function baseConfig(ns, overrides = {}) {
  return {
    kubeconfig: KUBECONFIG,
    namespace: ns,
    image: AGENT_IMAGE,
    imagePullPolicy: "IfNotPresent",
    hostNetwork: true,
    resources: SMALL_RESOURCES,
    env: { ...MOCK_ENV },
    ...overrides,
  };
}

/**
 * A ctx shaped like the one Paperclip's heartbeat service builds, recording every callback.
 * `logs` holds `[stream, chunk]` pairs in call order; `metas` and `spawns` the objects passed.
 */
export function recordingCtx({ config, runId = uniqueName("run"), agentId = uniqueName("agent"), runtime = {}, context = {}, extra = {} }) {
  const logs = [];
  const metas = [];
  const spawns = [];
  const ctx = {
    runId,
    agent: { id: agentId, companyId: "e2e-company", name: "E2E Agent", adapterType: "claude_k8s", adapterConfig: config },
    runtime: { sessionId: null, sessionParams: null, sessionDisplayId: null, taskKey: null, ...runtime },
    config,
    context,
    authToken: "e2e-auth-token",
    onLog: async (stream, chunk) => {
      logs.push([stream, chunk]);
    },
    onMeta: async (meta) => {
      metas.push(meta);
    },
    onSpawn: async (spawn) => {
      spawns.push(spawn);
    },
    ...extra,
  };
  return {
    ctx,
    logs,
    metas,
    spawns,
    /** Everything written to one stream, concatenated. */
    text(stream) {
      return logs.filter(([s]) => s === stream).map(([, c]) => c).join("");
    },
  };
}

/** The label selector of one run's objects. */
export function runSelector(runId) {
  return `paperclip.io/run-id=${runId}`;
}

/** The Job name the run announced in onMeta's commandNotes (`job: <name>`). */
export function jobNameOf(metas) {
  const note = metas[0]?.commandNotes?.find((n) => n.startsWith("job: "));
  if (!note) throw new Error(`no "job: " command note in onMeta: ${JSON.stringify(metas[0]?.commandNotes)}`);
  return note.slice("job: ".length);
}

/** The names of the Jobs, pods or Secrets matching a selector in a namespace. */
export async function names(kind, ns, selector) {
  const list = await kubectlJson(["get", kind, "-n", ns, "-l", selector]);
  return list.items.map((item) => item.metadata.name);
}

/** The `claude` container's log of the (single) pod of a Job, exactly as kubectl returns it. */
export async function podLog(ns, jobName) {
  const pods = await names("pods", ns, `job-name=${jobName}`);
  if (pods.length !== 1) throw new Error(`Job ${jobName} has ${pods.length} pods: ${pods.join(", ")}`);
  return kubectl(["logs", "-n", ns, pods[0], "-c", "claude"]);
}

/** Polls `check` every 200 ms until it returns a truthy value (no deadline: node:test times out). */
export async function eventually(check) {
  for (;;) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The stand-in API's logged requests (`{session, mode, prompt: last 300 chars, ...}`). */
export async function mockRequests() {
  const text = await readFile(MOCK_LOG, "utf8");
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/**
 * A copy of the admin kubeconfig with another `server` and/or context `namespace`, removed with
 * `t.after`. Returns its path.
 */
export async function kubeconfigCopy(t, { server, namespace } = {}) {
  let text = await readFile(KUBECONFIG, "utf8");
  if (server) text = text.replace(/server: \S+/, `server: ${server}`);
  if (namespace) text = text.replace(/namespace: [a-z0-9-]+\}/, `namespace: ${namespace}}`);
  const dir = await mkdtemp(join(tmpdir(), "claude-k8s-e2e-"));
  const path = join(dir, "kubeconfig");
  await writeFile(path, text);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return path;
}

/**
 * A TCP proxy on 127.0.0.1 in front of the apiserver, and a copy of the admin kubeconfig that
 * goes through it (the apiserver's certificate is for 127.0.0.1, so TLS still verifies).
 * `cut()` destroys every open connection at once, as a dropped load balancer or apiserver restart
 * would: watches and log streams break for real. Closed with `t.after`.
 */
export async function apiProxy(t) {
  const upstream = new URL((await readFile(KUBECONFIG, "utf8")).match(/server: (\S+)/)[1]);
  const open = new Set();
  let cuts = 0;
  const server = createServer((client) => {
    const backend = createConnection({ host: upstream.hostname, port: Number(upstream.port) });
    const pair = { client, backend };
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      backend.destroy();
    };
    client.on("error", drop).on("close", drop);
    backend.on("error", drop).on("close", drop);
    client.pipe(backend);
    backend.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const kubeconfig = await kubeconfigCopy(t, { server: `https://127.0.0.1:${port}` });
  t.after(async () => {
    for (const { client, backend } of open) {
      client.destroy();
      backend.destroy();
    }
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    kubeconfig,
    /** Destroys every connection open now; returns how many were cut. */
    cut() {
      const n = open.size;
      for (const { client, backend } of [...open]) {
        client.destroy();
        backend.destroy();
      }
      cuts += 1;
      return n;
    },
    get cuts() {
      return cuts;
    },
  };
}
