// testEnvironment (SPEC §8) against the real testbed cluster, as three identities: the admin
// (pass), the unprivileged user alice (fail, one error per missing permission), and a service
// account bound to exactly the Role of deploy/rbac.yaml (pass). The Role is proved sufficient by a
// real Claude Code Job run through execute() with that service account's kubeconfig, and minimal
// by comparing its rules with the permissions testEnvironment reports missing for alice.
//
// Needs testbed/up (cluster, agent image, stand-in Anthropic API on 127.0.0.1:18765).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { createServerAdapter } from "../index.js";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const TESTBED_DIR = process.env.TESTBED_DIR ?? "/var/tmp/paperclip-claude-k8s-testbed";
const ADMIN_KUBECONFIG = path.join(TESTBED_DIR, "run/admin.kubeconfig");
const ALICE_KUBECONFIG = path.join(TESTBED_DIR, "run/alice.kubeconfig");
const CA = path.join(TESTBED_DIR, "pki/ca.crt");
const PVC_SCRIPT = path.join(root, "testbed/pvc.sh");
/** Poll interval while waiting for the service account's token; the test timeout bounds it. */
const POLL_MS = 500;
/** Bounds (not assertions) so a broken cluster fails the run instead of hanging it. */
const SETUP_TIMEOUT_MS = 3 * 60_000;
const RUN_TIMEOUT_MS = 6 * 60_000;

const adapter = createServerAdapter();

function kubectl(...args) {
  return execFileSync("kubectl", ["--kubeconfig", ADMIN_KUBECONFIG, ...args], { encoding: "utf8" });
}

/** The admin kubeconfig's API server URL. */
function apiServer() {
  const config = JSON.parse(kubectl("config", "view", "--minify", "--raw", "-o", "json"));
  return config.clusters[0].cluster.server;
}

/** `{verb resource}` pairs of the Role, as testEnvironment words them (`jobs.batch`, `pods/log`). */
function roleGrants(namespace) {
  const role = JSON.parse(kubectl("get", "role", "paperclip-claude-k8s", "-n", namespace, "-o", "json"));
  const grants = new Set();
  for (const rule of role.rules) {
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) grants.add(`${verb} ${group ? `${resource}.${group}` : resource}`);
      }
    }
  }
  return grants;
}

/** A kubeconfig for the `paperclip` service account of deploy/rbac.yaml in `namespace`. */
async function serviceAccountKubeconfig(namespace, dir) {
  // Kubernetes 1.20 creates the token Secret of a service account by itself, shortly after it.
  const secretName = await (async () => {
    for (;;) {
      const name = kubectl("get", "serviceaccount", "paperclip", "-n", namespace, "-o", "jsonpath={.secrets[0].name}").trim();
      if (name) return name;
      await sleep(POLL_MS);
    }
  })();
  const encoded = kubectl("get", "secret", secretName, "-n", namespace, "-o", "jsonpath={.data.token}");
  const token = Buffer.from(encoded, "base64").toString("utf8");
  const file = path.join(dir, "paperclip-sa.kubeconfig");
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "testbed", cluster: { server: apiServer(), "certificate-authority": CA } }],
      users: [{ name: "paperclip", user: { token } }],
      contexts: [{ name: "paperclip", context: { cluster: "testbed", user: "paperclip", namespace } }],
      "current-context": "paperclip",
    }),
    { mode: 0o600 },
  );
  return file;
}

describe("testEnvironment and the least-privilege Role on the testbed", { timeout: RUN_TIMEOUT_MS * 2 }, () => {
  const namespace = `rbac-e2e-${crypto.randomBytes(3).toString("hex")}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "paperclip-rbac-"));
  let saKubeconfig;
  /** The config every check here tests, with the kubeconfig of the identity under test. */
  const configFor = (kubeconfig) => ({
    kubeconfig,
    namespace,
    image: "paperclip/claude-agent:dev",
    imagePullPolicy: "IfNotPresent",
    pvcName: "paperclip-shared",
  });

  before(async () => {
    execFileSync(PVC_SCRIPT, [namespace], { encoding: "utf8" });
    kubectl("create", "secret", "generic", "paperclip-secrets", "-n", namespace, "--from-literal=ANTHROPIC_API_KEY=test");
    const rbac = fs.readFileSync(path.join(root, "deploy/rbac.yaml"), "utf8").replaceAll("paperclip-agents", namespace);
    execFileSync("kubectl", ["--kubeconfig", ADMIN_KUBECONFIG, "apply", "-f", "-"], { input: rbac, encoding: "utf8" });
    saKubeconfig = await serviceAccountKubeconfig(namespace, dir);
  }, { timeout: SETUP_TIMEOUT_MS });

  after(() => {
    kubectl("delete", "namespace", namespace, "--wait=false");
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the admin passes every check", async () => {
    const result = await adapter.testEnvironment({ companyId: "c", adapterType: "claude_k8s", config: configFor(ADMIN_KUBECONFIG) });
    assert.equal(result.status, "pass", JSON.stringify(result.checks, null, 2));
    assert.deepEqual(
      result.checks.map((c) => c.code),
      ["k8s_api_reachable", "k8s_namespace_exists", "k8s_permissions_ok", "k8s_secret_found", "k8s_pvc_rwx", "k8s_image"],
    );
  });

  test("alice fails with one error per missing permission, and the Role grants exactly those", async () => {
    const result = await adapter.testEnvironment({ companyId: "c", adapterType: "claude_k8s", config: configFor(ALICE_KUBECONFIG) });
    assert.equal(result.status, "fail");
    const errors = result.checks.filter((c) => c.level === "error");
    assert.ok(errors.length > 0);
    const missing = new Set();
    for (const check of errors) {
      assert.equal(check.code, "k8s_permission_missing", check.message);
      const [, verb, resource] = check.message.match(new RegExp(`^not allowed to (\\w+) (\\S+) in namespace ${namespace}$`)) ?? [];
      assert.ok(verb, check.message);
      missing.add(`${verb} ${resource}`);
    }
    assert.equal(missing.size, errors.length, "each permission is reported once");
    for (const expected of ["create jobs.batch", "watch jobs.batch", "watch pods", "get pods/log", "delete secrets", "get persistentvolumeclaims"]) {
      assert.ok(missing.has(expected), `${expected} not reported: ${[...missing].join(", ")}`);
    }
    assert.deepEqual(roleGrants(namespace), missing, "deploy/rbac.yaml grants exactly what testEnvironment checks");
    // What alice cannot read is a warning of its own, not a guess.
    const codes = result.checks.map((c) => c.code);
    for (const code of ["k8s_namespace_unknown", "k8s_secret_unreadable", "k8s_pvc_unreadable"]) assert.ok(codes.includes(code), code);
  });

  test("the service account bound to the Role passes every check", async () => {
    const result = await adapter.testEnvironment({ companyId: "c", adapterType: "claude_k8s", config: configFor(saKubeconfig) });
    assert.equal(result.status, "pass", JSON.stringify(result.checks, null, 2));
    const namespaceCheck = result.checks.find((c) => c.code === "k8s_namespace_exists");
    assert.equal(namespaceCheck.message, `namespace ${namespace} exists (dry-run create)`);
  });

  /** One real run with the Role's service account; returns the result, output and argv. */
  async function runClaude(runId, extraConfig = {}) {
    const config = {
      ...configFor(saKubeconfig),
      hostNetwork: true,
      "resources.requests.cpu": "100m",
      "resources.requests.memory": "128Mi",
      "resources.limits.cpu": "1000m",
      "resources.limits.memory": "1Gi",
      env: {
        ANTHROPIC_BASE_URL: "http://127.0.0.1:18765",
        ANTHROPIC_API_KEY: "test",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        CLAUDE_CODE_MAX_RETRIES: "0",
      },
      promptTemplate: "You are agent {{agent.id}}. Say hello.",
      ...extraConfig,
    };
    const stdout = [];
    const stderr = [];
    let args = [];
    const result = await adapter.execute({
      runId,
      agent: { id: "rbac-agent", companyId: "rbac-company", name: "RBAC" },
      runtime: { sessionId: null, sessionParams: null, taskKey: null },
      config,
      context: {},
      authToken: "rbac-test-token",
      onLog: async (stream, chunk) => (stream === "stdout" ? stdout : stderr).push(chunk),
      onMeta: async (meta) => {
        args = meta.commandArgs;
      },
    });
    const transcript = `stdout:\n${stdout.join("")}\nstderr:\n${stderr.join("")}`;
    assert.equal(result.errorMessage ?? null, null, transcript);
    assert.equal(result.exitCode, 0, transcript);
    // A chunk may hold several lines (the adapter reads ahead of onLog).
    const lines = stdout.join("").split("\n");
    const events = lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
    assert.ok(events.some((e) => e.type === "result" && e.subtype === "success"), transcript);
    return { result, args, stderr, events };
  }

  test("a real run with the Role's service account succeeds and leaves nothing behind", { timeout: RUN_TIMEOUT_MS }, async () => {
    const runId = `rbac-${crypto.randomBytes(3).toString("hex")}`;
    const { result } = await runClaude(runId);
    assert.ok(result.sessionId, "the run reports Claude's session");
    for (const kind of ["jobs", "secrets"]) {
      const list = JSON.parse(kubectl("get", kind, "-n", namespace, "-l", `paperclip.io/run-id=${runId}`, "-o", "json"));
      const live = list.items.filter((item) => !item.metadata.deletionTimestamp);
      assert.deepEqual(live.map((item) => item.metadata.name), [], `the run's ${kind} were deleted with the Role's delete`);
    }
  });

  /** Runs with PAPERCLIP_K8S_SHARED_DIR set to the host directory testbed/pvc.sh backs the
   * claim with: the server's view of the Jobs' /paperclip. */
  async function runWithSharedVolume(extraConfig) {
    const saved = process.env.PAPERCLIP_K8S_SHARED_DIR;
    process.env.PAPERCLIP_K8S_SHARED_DIR = path.join(TESTBED_DIR, "volumes", `${namespace}-paperclip-shared`);
    try {
      return await runClaude(`rbac-${crypto.randomBytes(3).toString("hex")}`, extraConfig);
    } finally {
      if (saved === undefined) delete process.env.PAPERCLIP_K8S_SHARED_DIR;
      else process.env.PAPERCLIP_K8S_SHARED_DIR = saved;
    }
  }

  /** An instructions file as Paperclip's managed bundle keeps it, on the server's disk. */
  function serverInstructions() {
    const file = path.join(dir, "agents", "rbac-agent", "AGENTS.md");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "You are a careful agent.\n");
    return file;
  }

  test("an instructions file on the server reaches the Job through the shared volume", { timeout: RUN_TIMEOUT_MS }, async () => {
    const { args, stderr } = await runWithSharedVolume({ instructionsFilePath: serverInstructions() });
    const flag = args.indexOf("--append-system-prompt-file");
    assert.ok(flag >= 0, `no instructions flag in ${args.join(" ")}`);
    // claude refuses to start when that file is missing, so the run's success proves delivery.
    assert.match(args[flag + 1], /^\/paperclip\/\.claude-k8s\/bundles\/[0-9a-f]{64}\/instructions\/AGENTS\.md$/);
    assert.deepEqual(stderr.filter((line) => line.includes("instructions")), []);
  });

  test("an enabled skill on the server reaches Claude through the shared volume and --add-dir", { timeout: RUN_TIMEOUT_MS }, async () => {
    const skill = path.join(dir, "skills", "rbac-hello");
    fs.mkdirSync(skill, { recursive: true });
    fs.writeFileSync(path.join(skill, "SKILL.md"), "---\nname: rbac-hello\ndescription: Says hello\n---\nSay hello.\n");
    const { args, stderr, events } = await runWithSharedVolume({
      instructionsFilePath: serverInstructions(),
      paperclipRuntimeSkills: [{ key: "acme/skills/rbac-hello", runtimeName: "rbac-hello", source: skill }],
      paperclipSkillSync: { desiredSkills: ["acme/skills/rbac-hello"] },
    });
    const instructions = args[args.indexOf("--append-system-prompt-file") + 1];
    const bundle = instructions.slice(0, -"/instructions/AGENTS.md".length);
    assert.equal(args[args.indexOf("--add-dir") + 1], bundle, args.join(" "));
    const init = events.find((e) => e.type === "system" && e.subtype === "init");
    assert.ok(init.skills.includes("rbac-hello"), `claude loaded ${init.skills.join(", ")}`);
    assert.deepEqual(stderr.filter((line) => /instructions|skill/.test(line)), []);
  });
});
