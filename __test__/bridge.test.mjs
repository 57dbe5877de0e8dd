// The JS boundary: bad ctx shapes and misbehaving callbacks resolve with an error code naming
// the problem, never a rejection or a crash. Runs without a cluster: every run here fails before
// its first cluster call (config warnings go to onLog("stderr") first; the kubeconfig does not
// exist).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { createServerAdapter } from "../index.js";
import { silentApiServer } from "./helpers/silent-apiserver.mjs";

/** Guards the tests that wait on a child process against hanging forever; not an assertion. */
const HANG_GUARD_MS = 120_000;

const KUBECONFIG = "/nonexistent/paperclip-bridge-test.kubeconfig";
const { execute } = createServerAdapter();

/** A ctx whose run reports a `timeoutSec` warning on stderr, then fails to reach the cluster. */
function ctx(overrides = {}) {
  return {
    runId: "run-bridge-test",
    agent: { id: "agent-bridge", companyId: "company-bridge", name: "Bridge" },
    runtime: { sessionId: null, sessionParams: null, taskKey: null },
    config: { timeoutSec: "abc", kubeconfig: KUBECONFIG },
    context: {},
    onLog: async () => {},
    ...overrides,
  };
}

function assertUnreachable(result) {
  assert.equal(result.errorCode, "k8s_api_unreachable", result.errorMessage);
  assert.match(result.errorMessage, new RegExp(KUBECONFIG));
}

describe("createServerAdapter", () => {
  it("returns the claude_k8s module with execute", () => {
    const adapter = createServerAdapter();
    assert.equal(adapter.type, "claude_k8s");
    assert.equal(adapter.label, "Claude (Kubernetes)");
    assert.equal(adapter.supportsLocalAgentJwt, true);
    assert.equal(typeof adapter.execute, "function");
  });
});

describe("a ctx of the wrong shape resolves with k8s_config_invalid naming the field", () => {
  const cases = [
    ["ctx null", null, "ctx must be an object, got null"],
    ["ctx a string", "run", "ctx must be an object, got string"],
    ["runId a number", ctx({ runId: 42 }), "ctx.runId must be a string, got number"],
    ["agent missing", ctx({ agent: undefined }), "ctx.agent must be an object, got undefined"],
    ["agent.id null", ctx({ agent: { id: null, companyId: "c" } }), "ctx.agent.id must be a string, got null"],
    ["agent.companyId missing", ctx({ agent: { id: "a" } }), "ctx.agent.companyId must be a string, got undefined"],
    [
      "runtime an array",
      ctx({ runtime: [] }),
      "ctx.runtime must be an object, null or undefined, got array",
    ],
    [
      "runtime.sessionId a number",
      ctx({ runtime: { sessionId: 7 } }),
      "ctx.runtime.sessionId must be a string, null or undefined, got number",
    ],
    ["config a string", ctx({ config: "{}" }), "ctx.config must be an object, null or undefined, got string"],
    ["context a boolean", ctx({ context: true }), "ctx.context must be an object, null or undefined, got boolean"],
    [
      "authToken a number",
      ctx({ authToken: 1 }),
      "ctx.authToken must be a string, null or undefined, got number",
    ],
    ["onLog missing", ctx({ onLog: undefined }), "ctx.onLog must be a function, got undefined"],
    ["onLog a string", ctx({ onLog: "log" }), "ctx.onLog must be a function, got string"],
    ["onMeta an object", ctx({ onMeta: {} }), "ctx.onMeta must be a function, null or undefined, got object"],
    ["onDispatch a number", ctx({ onDispatch: 1 }), "ctx.onDispatch must be a function, null or undefined, got number"],
  ];
  for (const [name, input, message] of cases) {
    it(name, async () => {
      const result = await execute(input);
      assert.equal(result.errorCode, "k8s_config_invalid");
      assert.equal(result.errorMessage, message);
      assert.equal(result.exitCode, null);
      assert.equal(result.timedOut, false);
    });
  }

  const notJson = (key, detail) =>
    `ctx.context.${key} is not JSON data (${detail}); config and context may hold only JSON data: ` +
    "no functions, symbols, cycles or nesting deeper than 128 levels";

  it("context holding a function", async () => {
    const result = await execute(ctx({ context: { taskId: "t", helper() {} } }));
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.equal(result.errorMessage, notJson("helper", "JS functions cannot be represented as a serde_json::Value"));
  });

  it("context holding a cycle", async () => {
    const loop = { name: "loop" };
    loop.self = loop;
    const result = await execute(ctx({ context: { loop } }));
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.equal(result.errorMessage, notJson("loop", "Exceeded maximum JSON nesting depth"));
  });

  it("config holding a symbol", async () => {
    const result = await execute(ctx({ config: { model: Symbol("m") } }));
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.match(result.errorMessage, /^ctx\.config\.model is not JSON data/);
  });

  it("a getter of ctx that throws", async () => {
    const result = await execute({
      get runId() {
        throw new Error("getter boom");
      },
    });
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.equal(result.errorMessage, "ctx could not be read: getter boom");
  });

  it("a getter inside config that throws", async () => {
    const config = {
      get model() {
        throw new Error("deep getter");
      },
    };
    const result = await execute(ctx({ config }));
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.equal(result.errorMessage, "ctx could not be read: deep getter");
  });

  it("a Proxy ctx whose traps throw", async () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error("trap");
        },
      },
    );
    const result = await execute(hostile);
    assert.equal(result.errorCode, "k8s_config_invalid");
    assert.equal(result.errorMessage, "ctx could not be read: trap");
  });

  it("an invalid ctx calls no callback", async () => {
    let calls = 0;
    const count = async () => {
      calls += 1;
    };
    await execute(ctx({ runId: 1, onLog: count, onMeta: count, onDispatch: count }));
    assert.equal(calls, 0);
  });
});

describe("JSON-compatible values that JSON.stringify would refuse or drop do not fail the ctx", () => {
  it("BigInt, undefined fields and absent optional parts", async () => {
    const result = await execute(
      ctx({ runtime: undefined, authToken: null, context: { big: 10n, gone: undefined, nested: { n: [1, "x"] } } }),
    );
    assertUnreachable(result);
  });
});

describe("an agent id that sanitises to nothing", () => {
  it("resolves with k8s_agent_id_invalid", async () => {
    const result = await execute(ctx({ agent: { id: "!!!", companyId: "c", name: "n" } }));
    assert.equal(result.errorCode, "k8s_agent_id_invalid");
  });
});

describe("onLog callback matrix", () => {
  it("receives the config warning on stderr, naming the key, before the run settles", async () => {
    const chunks = [];
    const result = await execute(ctx({ onLog: async (stream, chunk) => void chunks.push([stream, chunk]) }));
    assertUnreachable(result);
    const warnings = chunks.filter(([stream, chunk]) => stream === "stderr" && chunk.includes("timeoutSec"));
    assert.equal(warnings.length, 1, JSON.stringify(chunks));
    assert.ok(warnings[0][1].endsWith("\n"));
  });

  it("throws synchronously: adapter_callback_failed naming onLog and the message", async () => {
    const result = await execute(
      ctx({
        onLog: () => {
          throw new Error("disk full");
        },
      }),
    );
    assert.equal(result.errorCode, "adapter_callback_failed");
    assert.equal(result.errorMessage, "onLog callback failed: disk full");
  });

  it("throws a string: the string is the message", async () => {
    const result = await execute(
      ctx({
        onLog: () => {
          throw "no space";
        },
      }),
    );
    assert.equal(result.errorCode, "adapter_callback_failed");
    assert.equal(result.errorMessage, "onLog callback failed: no space");
  });

  it("rejects: adapter_callback_failed naming onLog and the message", async () => {
    const result = await execute(ctx({ onLog: () => Promise.reject(new Error("socket closed")) }));
    assert.equal(result.errorCode, "adapter_callback_failed");
    assert.equal(result.errorMessage, "onLog callback failed: socket closed");
  });

  it("rejects with a non-Error: still named, with a message saying so", async () => {
    const result = await execute(ctx({ onLog: () => Promise.reject(42) }));
    assert.equal(result.errorCode, "adapter_callback_failed");
    assert.equal(
      result.errorMessage,
      "onLog callback failed: it threw or rejected with something other than an Error or a string, " +
        "or an Error without a message",
    );
  });

  it("returns a non-promise: the run goes on", async () => {
    const seen = [];
    const result = await execute(ctx({ onLog: (stream, chunk) => seen.push(chunk) }));
    assertUnreachable(result);
    assert.ok(seen.some((chunk) => chunk.includes("timeoutSec")));
  });

  it("returns the wrong type, plain or resolved: the run goes on", async () => {
    for (const onLog of [() => "not void", () => ({ then: 1 }), async () => ({ weird: true }), async () => 7n]) {
      assertUnreachable(await execute(ctx({ onLog })));
    }
  });

  it("is slow: every line arrives, in order, one call at a time, before the run settles", async () => {
    const keys = ["timeoutSec", "graceSec", "maxTurnsPerRun", "ttlSecondsAfterFinished"];
    const config = { kubeconfig: KUBECONFIG };
    for (const key of keys) config[key] = `not-a-number-${key}`;
    const chunks = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let settled = false;
    const onLog = async (stream, chunk) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(settled, false, "onLog called after execute settled");
      chunks.push([stream, chunk]);
      inFlight -= 1;
    };
    const result = await execute(ctx({ config, onLog }));
    settled = true;
    assertUnreachable(result);
    assert.equal(maxInFlight, 1);
    const stderr = chunks.filter(([stream]) => stream === "stderr").map(([, chunk]) => chunk);
    for (const key of keys) {
      assert.equal(stderr.filter((chunk) => chunk.includes(key)).length, 1, `${key}: ${JSON.stringify(stderr)}`);
    }
  });
});

describe("cancellation opt-in (ctx.signal with onCancellationReady)", () => {
  it("awaits onCancellationReady before the run starts", async () => {
    const order = [];
    const result = await execute(
      ctx({
        signal: new AbortController().signal,
        onCancellationReady: async () => {
          await new Promise((resolve) => setImmediate(resolve));
          order.push("ready");
        },
        onLog: async () => void order.push("log"),
      }),
    );
    assertUnreachable(result);
    assert.equal(order[0], "ready");
    assert.ok(order.includes("log"));
  });

  it("onCancellationReady rejecting: adapter_callback_failed naming it, and no run", async () => {
    let logged = false;
    const result = await execute(
      ctx({
        signal: new AbortController().signal,
        onCancellationReady: () => Promise.reject(new Error("not ready")),
        onLog: async () => {
          logged = true;
        },
      }),
    );
    assert.equal(result.errorCode, "adapter_callback_failed");
    assert.equal(result.errorMessage, "onCancellationReady callback failed: not ready");
    assert.equal(logged, false);
  });
});

describe("cancellation through ctx.signal", () => {
  it("an abort while the Kubernetes API hangs resolves with cancelled", { timeout: HANG_GUARD_MS }, async () => {
    // An "API server" that accepts connections and never answers: the run is stuck on its first
    // cluster call until the abort reaches it.
    const dir = mkdtempSync(join(tmpdir(), "paperclip-bridge-"));
    const api = await silentApiServer(dir, "bridge-test");
    const { kubeconfig } = api;
    try {
      const abort = new AbortController();
      const run = execute(
        ctx({
          config: { kubeconfig, image: "paperclip/claude-agent:dev", namespace: "bridge-test" },
          signal: abort.signal,
          onCancellationReady: async () => {},
        }),
      );
      const first = await Promise.race([api.firstConnection, run]);
      assert.equal(first, "connected", `the run settled before calling the API: ${JSON.stringify(first)}`);
      abort.abort();
      const result = await run;
      assert.equal(result.errorCode, "cancelled", result.errorMessage);
    } finally {
      api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the Node process lifetime", () => {
  it("a pending execute keeps Node alive, and Node exits once it settles", { timeout: HANG_GUARD_MS }, async () => {
    // The child's script ends right after calling execute: only the addon can keep it alive
    // until the result arrives; its callbacks (onLog, onMeta, onDispatch) must not keep it alive
    // afterwards.
    const script = `
      import { createServerAdapter } from ${JSON.stringify(fileURLToPath(new URL("../index.js", import.meta.url)))};
      createServerAdapter()
        .execute({
          runId: "run-lifetime",
          agent: { id: "agent-lifetime", companyId: "c", name: "n" },
          config: { timeoutSec: "abc", kubeconfig: ${JSON.stringify(KUBECONFIG)} },
          context: {},
          onLog: async () => {},
          onMeta: async () => {},
          onDispatch: async () => {},
        })
        .then((result) => console.log(JSON.stringify(result)));
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (data) => {
      stdout += data;
    });
    const code = await new Promise((resolve) => child.on("exit", resolve));
    assert.equal(code, 0);
    assertUnreachable(JSON.parse(stdout));
  });
});
