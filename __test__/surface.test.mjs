// The module object's surface besides execute (SPEC §2): testEnvironment's contract without a
// cluster, sessionCodec, models, the config schema and doc (checked against the keys
// src/plan/config.rs reads), skills, the instructions bundle, and cancellation on servers without
// ctx.signal (a local HTTP server stands in for Paperclip's run endpoint).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { createServerAdapter } from "../index.js";
import { silentApiServer } from "./helpers/silent-apiserver.mjs";
import { prepareBundle } from "../lib/bundle.js";
import { CONFIG_FIELDS } from "../lib/config-fields.js";
import { BEDROCK_MODELS, currentModels, DIRECT_MODELS } from "../lib/models.js";

/** Guards the tests that wait on a child process against hanging forever; not an assertion. */
const HANG_GUARD_MS = 120_000;

const KUBECONFIG = "/nonexistent/paperclip-surface-test.kubeconfig";
const adapter = createServerAdapter();

describe("the module object", () => {
  it("has every field SPEC §2 lists", () => {
    assert.equal(adapter.type, "claude_k8s");
    for (const fn of ["execute", "testEnvironment", "listModels", "listSkills", "syncSkills", "getConfigSchema"]) {
      assert.equal(typeof adapter[fn], "function", fn);
    }
    assert.equal(adapter.supportsLocalAgentJwt, true);
    assert.equal(adapter.supportsInstructionsBundle, true);
    assert.equal(adapter.instructionsPathKey, "instructionsFilePath");
    assert.deepEqual(adapter.sessionManagement, {
      supportsSessionResume: true,
      nativeContextManagement: "confirmed",
      defaultSessionCompaction: { enabled: true, maxSessionRuns: 0, maxRawInputTokens: 0, maxSessionAgeHours: 0 },
    });
    assert.ok(adapter.models.length > 0);
    assert.equal(typeof adapter.agentConfigurationDoc, "string");
  });
});

describe("testEnvironment without a cluster", () => {
  it("reports every unusable config value by key, then the unreachable cluster, and fails", async () => {
    const result = await adapter.testEnvironment({
      companyId: "c",
      adapterType: "claude_k8s",
      config: { kubeconfig: KUBECONFIG, timeoutSec: "soon", retainJobs: "yes" },
    });
    assert.equal(result.adapterType, "claude_k8s");
    assert.equal(result.status, "fail");
    assert.ok(!Number.isNaN(Date.parse(result.testedAt)), result.testedAt);
    assert.deepEqual(
      result.checks.map((c) => [c.code, c.level]),
      [
        ["k8s_config_value_unusable", "warn"],
        ["k8s_config_value_unusable", "warn"],
        ["k8s_api_unreachable", "error"],
      ],
    );
    assert.match(result.checks[0].message, /^config key `retainJobs`: expected a boolean/);
    assert.match(result.checks[1].message, /^config key `timeoutSec`: expected a non-negative whole number/);
    assert.match(result.checks[2].message, new RegExp(KUBECONFIG));
  });

  it("resolves with a failed check for a ctx of the wrong shape", async () => {
    for (const [ctx, message] of [
      [null, "ctx must be an object, got null"],
      [{ config: "x" }, "ctx.config must be an object, null or undefined, got string"],
      [{ config: { f: () => 1 } }, /^ctx\.config\.f is not JSON data/],
    ]) {
      const result = await adapter.testEnvironment(ctx);
      assert.equal(result.status, "fail");
      assert.equal(result.checks.length, 1);
      assert.equal(result.checks[0].code, "k8s_config_invalid");
      if (typeof message === "string") assert.equal(result.checks[0].message, message);
      else assert.match(result.checks[0].message, message);
    }
  });
});

describe("sessionCodec", () => {
  const { sessionCodec } = adapter;
  it("keeps the session id and the workspace fields, reading the older aliases", () => {
    const stored = sessionCodec.serialize({
      sessionId: " 7f9c0a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f ",
      cwd: "/paperclip/w",
      workspace_id: "ws",
      repo_url: "https://example.com/r.git",
      repoRef: "main",
      extra: "dropped",
    });
    assert.deepEqual(stored, {
      sessionId: "7f9c0a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f",
      cwd: "/paperclip/w",
      workspaceId: "ws",
      repoUrl: "https://example.com/r.git",
      repoRef: "main",
    });
    assert.deepEqual(sessionCodec.deserialize(stored), stored);
    assert.deepEqual(sessionCodec.deserialize({ session_id: "s", workdir: "/w" }), { sessionId: "s", cwd: "/w" });
    assert.equal(sessionCodec.getDisplayId(stored), "7f9c0a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f");
  });

  it("answers null for anything without a session id", () => {
    for (const raw of [null, undefined, "s", [], {}, { sessionId: "  " }, { sessionId: 7 }]) {
      assert.equal(sessionCodec.deserialize(raw), null, JSON.stringify(raw));
      assert.equal(sessionCodec.getDisplayId(raw ?? null), null);
    }
    assert.equal(sessionCodec.serialize(null), null);
  });
});

describe("models", () => {
  it("lists direct Anthropic ids, or Bedrock ids when the server's env selects Bedrock", async () => {
    const saved = { use: process.env.CLAUDE_CODE_USE_BEDROCK, url: process.env.ANTHROPIC_BEDROCK_BASE_URL };
    try {
      delete process.env.CLAUDE_CODE_USE_BEDROCK;
      delete process.env.ANTHROPIC_BEDROCK_BASE_URL;
      assert.deepEqual(await adapter.listModels(), DIRECT_MODELS);
      process.env.CLAUDE_CODE_USE_BEDROCK = "1";
      const bedrock = await adapter.listModels();
      assert.deepEqual(bedrock, BEDROCK_MODELS);
      assert.ok(bedrock.every((m) => m.id.startsWith("us.anthropic.")));
      assert.deepEqual(createServerAdapter().models, BEDROCK_MODELS);
      delete process.env.CLAUDE_CODE_USE_BEDROCK;
      process.env.ANTHROPIC_BEDROCK_BASE_URL = "https://bedrock.example";
      assert.deepEqual(await adapter.listModels(), BEDROCK_MODELS);
      process.env.ANTHROPIC_BEDROCK_BASE_URL = " ";
      assert.deepEqual(await adapter.listModels(), DIRECT_MODELS);
    } finally {
      for (const [name, value] of [["CLAUDE_CODE_USE_BEDROCK", saved.use], ["ANTHROPIC_BEDROCK_BASE_URL", saved.url]]) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

/** The keys src/plan/config.rs hands to its readers (string literals in `r.<reader>("key"`, the
 * `const KEY` of the structured readers, `self.get("resources")`, and the flat resource keys). */
function keysReadByConfigRs() {
  const source = readFileSync(new URL("../src/plan/config.rs", import.meta.url), "utf8");
  const keys = new Set();
  for (const m of source.matchAll(/\br\.(?:string|count|boolean|name|label_map)\(\s*"([A-Za-z]+)"/g)) keys.add(m[1]);
  for (const m of source.matchAll(/const KEY: &str = "([A-Za-z]+)";/g)) keys.add(m[1]);
  for (const m of source.matchAll(/self\.get\("([A-Za-z]+)"\)/g)) keys.add(m[1]);
  assert.match(source, /format!\("resources\.\{group\}\.\{name\}"\)/, "the flat resource keys moved");
  for (const group of ["requests", "limits"]) for (const name of ["cpu", "memory"]) keys.add(`resources.${group}.${name}`);
  return keys;
}

describe("config schema and doc", () => {
  it("the table has exactly the keys src/plan/config.rs reads", () => {
    const table = CONFIG_FIELDS.map((f) => f.key);
    assert.equal(new Set(table).size, table.length, "a key appears twice");
    assert.deepEqual(new Set(table), keysReadByConfigRs());
  });

  it("Config::parse really reads every key of the table (a wrong value warns naming it)", async () => {
    const bad = (f) =>
      f.type === "toggle" ? "yes" : f.type === "number" ? "many" : f.key.startsWith("resources.") ? "lots" : 42;
    const config = Object.fromEntries(CONFIG_FIELDS.map((f) => [f.key, bad(f)]));
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = KUBECONFIG;
    try {
      const { checks } = await adapter.testEnvironment({ config });
      const warned = checks.filter((c) => c.code === "k8s_config_value_unusable").map((c) => c.message);
      for (const { key } of CONFIG_FIELDS) {
        assert.ok(warned.some((m) => m.startsWith(`config key \`${key}\`: `)), `no warning for ${key}: ${warned.join("\n")}`);
      }
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  it("getConfigSchema has a field of a UI type for every form key, and the doc names every key", async () => {
    const { fields } = await adapter.getConfigSchema();
    const types = new Set(["text", "select", "toggle", "number", "textarea", "combobox"]);
    for (const field of fields) {
      assert.ok(types.has(field.type), `${field.key}: ${field.type}`);
      assert.equal(typeof field.label, "string");
      if (field.type === "select") assert.ok(field.options.length > 0, field.key);
    }
    assert.deepEqual(
      fields.map((f) => f.key),
      CONFIG_FIELDS.filter((f) => f.form !== false).map((f) => f.key),
    );
    for (const { key } of CONFIG_FIELDS) {
      assert.ok(adapter.agentConfigurationDoc.includes(`\n- ${key} (`), `doc lacks ${key}`);
    }
    assert.match(adapter.agentConfigurationDoc, /- timeoutSec \(non-negative whole number, optional, default 0\)/);
    const model = fields.find((f) => f.key === "model");
    assert.deepEqual(model.options, currentModels().map(({ id, label }) => ({ value: id, label })));
  });
});

describe("skills", () => {
  const skills = [
    { key: "paperclipai/paperclip/paperclip", runtimeName: "paperclip", source: "/srv/skills/paperclip" },
    { key: "acme/tools/deploy", runtimeName: "deploy", source: "/srv/skills/deploy" },
    { key: "acme/tools/gone", runtimeName: "gone", source: "/srv/skills/gone", sourceStatus: "missing" },
    { key: "broken" },
  ];
  it("is ephemeral; the operational skill and the chosen ones are configured", async () => {
    const config = { paperclipRuntimeSkills: skills, paperclipSkillSync: { desiredSkills: ["deploy", { key: "nope" }] } };
    const snapshot = await adapter.listSkills({ agentId: "a", companyId: "c", adapterType: "claude_k8s", config });
    assert.equal(snapshot.mode, "ephemeral");
    assert.equal(snapshot.supported, true);
    assert.deepEqual(snapshot.desiredSkills, ["paperclipai/paperclip/paperclip", "acme/tools/deploy", "nope"]);
    const states = Object.fromEntries(snapshot.entries.map((e) => [e.key, e.state]));
    assert.deepEqual(states, {
      "acme/tools/deploy": "configured",
      "acme/tools/gone": "missing",
      nope: "missing",
      "paperclipai/paperclip/paperclip": "configured",
    });
    assert.deepEqual(snapshot.warnings, ['Desired skill "nope" is not available from the Paperclip skills directory.']);
    assert.deepEqual(await adapter.syncSkills({ config }, ["deploy"]), snapshot);
  });
});

describe("the instructions bundle", () => {
  it("is content addressed on the shared volume, with the skills under .claude/skills", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paperclip-bundle-"));
    try {
      const instructions = join(dir, "server", "agents", "a1");
      mkdirSync(instructions, { recursive: true });
      writeFileSync(join(instructions, "AGENTS.md"), "Be brief.\n");
      writeFileSync(join(instructions, "HEARTBEAT.md"), "Check the inbox.\n");
      const skill = join(dir, "server", "skills", "paperclip");
      mkdirSync(join(skill, "refs"), { recursive: true });
      writeFileSync(join(skill, "SKILL.md"), "---\nname: paperclip\n---\n");
      writeFileSync(join(skill, "refs", "api.md"), "GET /api\n");
      const shared = join(dir, "shared");
      mkdirSync(shared);
      const config = {
        instructionsFilePath: join(instructions, "AGENTS.md"),
        paperclipRuntimeSkills: [{ key: "paperclipai/paperclip/paperclip", runtimeName: "paperclip", source: skill }],
      };
      const bundle = await prepareBundle(config, shared);
      assert.match(bundle.addDir, /^\/paperclip\/\.claude-k8s\/bundles\/[0-9a-f]{64}$/);
      assert.equal(bundle.instructionsFilePath, `${bundle.addDir}/instructions/AGENTS.md`);
      assert.deepEqual(bundle.notes, []);
      const local = join(shared, bundle.addDir.slice("/paperclip/".length));
      const agents = readFileSync(join(local, "instructions", "AGENTS.md"), "utf8");
      assert.ok(agents.startsWith("Be brief.\n"));
      assert.match(agents, new RegExp(`from ${bundle.addDir}/instructions/\\.`));
      assert.equal(readFileSync(join(local, "instructions", "HEARTBEAT.md"), "utf8"), "Check the inbox.\n");
      assert.equal(readFileSync(join(local, ".claude", "skills", "paperclip", "refs", "api.md"), "utf8"), "GET /api\n");
      assert.deepEqual(await prepareBundle(config, shared), bundle, "same contents, same bundle");
      writeFileSync(join(instructions, "AGENTS.md"), "Be thorough.\n");
      const changed = await prepareBundle(config, shared);
      assert.notEqual(changed.addDir, bundle.addDir);
      assert.equal(readdirSync(join(shared, ".claude-k8s", "bundles")).length, 2);
      const unreadable = await prepareBundle({ instructionsFilePath: "/in/the/image/AGENTS.md" }, shared);
      assert.equal(unreadable.instructionsFilePath, null);
      assert.match(unreadable.notes[0], /^could not read instructions file \/in\/the\/image\/AGENTS\.md here/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("execute delivers the instructions bundle", () => {
  const run = (config, onLog) =>
    adapter.execute({
      runId: "run-bundle",
      agent: { id: "agent-bundle", companyId: "c", name: "n" },
      config: { kubeconfig: KUBECONFIG, ...config },
      context: {},
      onLog,
    });

  it("materialises it under $PAPERCLIP_K8S_SHARED_DIR before the run starts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paperclip-exec-bundle-"));
    const saved = process.env.PAPERCLIP_K8S_SHARED_DIR;
    try {
      writeFileSync(join(dir, "AGENTS.md"), "Be brief.\n");
      mkdirSync(join(dir, "shared"));
      process.env.PAPERCLIP_K8S_SHARED_DIR = join(dir, "shared");
      const result = await run({ instructionsFilePath: join(dir, "AGENTS.md") }, async () => {});
      assert.equal(result.errorCode, "k8s_api_unreachable", result.errorMessage);
      const [bundle] = readdirSync(join(dir, "shared", ".claude-k8s", "bundles"));
      assert.match(bundle, /^[0-9a-f]{64}$/);
    } finally {
      if (saved === undefined) delete process.env.PAPERCLIP_K8S_SHARED_DIR;
      else process.env.PAPERCLIP_K8S_SHARED_DIR = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a config whose getters throw still resolves, as k8s_config_invalid", async () => {
    const result = await adapter.execute({
      runId: "run-trap",
      agent: { id: "agent-trap", companyId: "c", name: "n" },
      config: {
        kubeconfig: KUBECONFIG,
        get instructionsFilePath() {
          throw new Error("trap");
        },
      },
      onLog: async () => {},
    });
    assert.equal(result.errorCode, "k8s_config_invalid", result.errorMessage);
    assert.match(result.errorMessage, /trap/);
  });

  it("without a shared volume, leaves out a server-only instructions file and says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paperclip-no-shared-"));
    const saved = process.env.PAPERCLIP_K8S_SHARED_DIR;
    process.env.PAPERCLIP_K8S_SHARED_DIR = "/nonexistent/paperclip-shared";
    try {
      writeFileSync(join(dir, "AGENTS.md"), "Be brief.\n");
      for (const [file, note] of [
        [join(dir, "AGENTS.md"), /^\[claude_k8s\] instructions file \S+AGENTS\.md is on the Paperclip server only and no shared volume is visible here .*: the run goes without it\n$/],
        ["/in/the/image/AGENTS.md", undefined],
      ]) {
        const stderr = [];
        const result = await run({ instructionsFilePath: file }, async (stream, chunk) => {
          if (stream === "stderr") stderr.push(chunk);
        });
        assert.equal(result.errorCode, "k8s_api_unreachable", result.errorMessage);
        const notes = stderr.filter((line) => line.includes("instructions file"));
        if (note) assert.match(notes.join(""), note);
        else assert.deepEqual(notes, [], "a path the server cannot read may be in the image: passed on silently");
      }
    } finally {
      if (saved === undefined) delete process.env.PAPERCLIP_K8S_SHARED_DIR;
      else process.env.PAPERCLIP_K8S_SHARED_DIR = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cancellation on servers without ctx.signal", () => {
  it("polls the run with the JWT, ignores errors and `interrupted`, cancels on `cancelled`, and lets Node exit", { timeout: HANG_GUARD_MS }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "paperclip-poll-"));
    const api = await silentApiServer(dir, "surface-test");
    // What the stand-in Paperclip answers, request by request; the last one repeats.
    const answers = [
      [500, { error: "boom" }],
      [500, { error: "boom" }],
      [200, { id: "run-poll", status: "interrupted" }],
      [200, { id: "run-poll", status: "running" }],
      [200, { id: "run-poll", status: "cancelled" }],
    ];
    const requests = [];
    const paperclip = createHttpServer((req, res) => {
      requests.push({ url: req.url, auth: req.headers.authorization });
      const [code, body] = answers[Math.min(requests.length, answers.length) - 1];
      res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    await new Promise((resolve) => paperclip.listen(0, "127.0.0.1", resolve));
    const script = `
      import { createServerAdapter } from ${JSON.stringify(fileURLToPath(new URL("../index.js", import.meta.url)))};
      const stderr = [];
      const result = await createServerAdapter().execute({
        runId: "run-poll",
        agent: { id: "agent-poll", companyId: "c", name: "n" },
        config: { kubeconfig: ${JSON.stringify(api.kubeconfig)}, image: "paperclip/claude-agent:dev" },
        context: {},
        authToken: "jwt-of-the-agent",
        onLog: async (stream, chunk) => { if (stream === "stderr") stderr.push(chunk); },
      });
      console.log(JSON.stringify({ result, stderr }));
    `;
    try {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
        // HOSTNAME + POD_NAMESPACE make the run read "its" Paperclip pod first, a read with no
        // deadline of its own: on the silent API it waits for the cancel however slow the poll.
        env: {
          ...process.env,
          PAPERCLIP_API_URL: `http://127.0.0.1:${paperclip.address().port}/`,
          HOSTNAME: "paperclip-0",
          POD_NAMESPACE: "surface-test",
        },
      });
      let stdout = "";
      child.stdout.on("data", (data) => {
        stdout += data;
      });
      const code = await new Promise((resolve) => child.on("exit", resolve));
      assert.equal(code, 0, "the child exits on its own once execute settles");
      const { result, stderr } = JSON.parse(stdout);
      assert.equal(result.errorCode, "cancelled", result.errorMessage);
      assert.equal(requests.length, answers.length, "polling stopped at `cancelled`, not before");
      for (const r of requests) assert.deepEqual(r, { url: "/api/heartbeat-runs/run-poll", auth: "Bearer jwt-of-the-agent" });
      const complaints = stderr.filter((line) => line.includes("cannot watch for cancellation"));
      assert.equal(complaints.length, 1, stderr.join(""));
      assert.match(complaints[0], /answered HTTP 500/);
    } finally {
      api.close();
      paperclip.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
