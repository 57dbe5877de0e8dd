// The UI transcript parser, evaluated exactly as the Paperclip UI's parser worker does, over the
// genuine Claude Code stream-json transcripts and the adapter's own status lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const source = fs.readFileSync(path.join(root, "ui-parser.js"), "utf8");
const transcriptsDir = path.join(root, "..", "shared", "claude-cli", "transcripts");
const sharedTranscripts = fs.existsSync(transcriptsDir) ? transcriptsDir : "/work/shared/claude-cli/transcripts";
const TS = "2026-11-21T10:00:00.000Z";

/** The UI worker's init step (paperclipai ui-dist, both 2026.824.1 and 2026.916.1). */
function loadLikeTheUi(code) {
  const exports = {};
  const module = { exports };
  const factory = new Function("exports", "module", "self", "globalThis", '"use strict";\n{\n' + code + "\n}");
  factory(exports, module, undefined, undefined);
  const resolved =
    module.exports && typeof module.exports === "object" && Object.keys(module.exports).length > 0
      ? module.exports
      : exports;
  return resolved;
}

const parser = loadLikeTheUi(source);
const parse = (line) => parser.parseStdoutLine(line, TS);

function transcript(name) {
  return fs
    .readFileSync(path.join(sharedTranscripts, name), "utf8")
    .split("\n")
    .filter((line) => line.length > 0);
}

test("the file loads in the UI worker's sandbox and exports parseStdoutLine", () => {
  assert.equal(typeof parser.parseStdoutLine, "function");
  assert.doesNotMatch(source, /\brequire\s*\(|^\s*import\s|^\s*export\s/m);
});

test("every transcript line yields structured-cloneable entries stamped with the line's ts", () => {
  const known = new Set(["init", "assistant", "thinking", "user", "tool_call", "tool_result", "result", "stderr", "system", "stdout"]);
  for (const name of fs.readdirSync(sharedTranscripts).filter((f) => f.endsWith(".jsonl"))) {
    for (const line of transcript(name)) {
      const entries = parse(line);
      assert.ok(entries.length > 0, `${name}: no entry for ${line.slice(0, 80)}`);
      assert.deepEqual(structuredClone(entries), entries);
      for (const entry of entries) {
        assert.ok(known.has(entry.kind), `${name}: unknown kind ${entry.kind}`);
        assert.equal(entry.ts, TS);
      }
    }
  }
});

test("a simple run: init with model and session, the assistant text, the result with usage and cost", () => {
  const [init, assistant, result] = transcript("01-simple-text.stream.jsonl").map(parse);
  assert.deepEqual(init, [{ kind: "init", ts: TS, model: "claude-opus-5-5", sessionId: "5c5b3b2b-60ad-48d0-85b1-41c88054bd2d" }]);
  assert.deepEqual(assistant, [{ kind: "assistant", ts: TS, text: "Hello from mock. Turn with 2 messages." }]);
  assert.deepEqual(result, [
    {
      kind: "result",
      ts: TS,
      text: "Hello from mock. Turn with 2 messages.",
      inputTokens: 100,
      outputTokens: 12,
      cachedTokens: 0,
      costUsd: 0.00064,
      subtype: "success",
      isError: false,
      errors: [],
    },
  ]);
});

test("tool use: the call with its id and input, then its result", () => {
  const entries = transcript("02-tool-use-bash-bypass.stream.jsonl").flatMap(parse);
  const call = entries.find((e) => e.kind === "tool_call");
  const result = entries.find((e) => e.kind === "tool_result");
  assert.equal(call.name, "Bash");
  assert.match(call.toolUseId, /^toolu_/);
  assert.equal(typeof call.input.command, "string");
  assert.deepEqual(result, { kind: "tool_result", ts: TS, toolUseId: call.toolUseId, content: "done", isError: false });
  assert.deepEqual(
    entries.filter((e) => e.kind === "assistant").map((e) => e.text),
    ["I'll run a command.", "The tool printed: done"],
  );
});

test("a denied tool: the error result is flagged and the permission_denied event stays visible as stdout", () => {
  const lines = transcript("03-tool-permission-denied.stream.jsonl");
  const denied = lines.find((l) => l.includes('"permission_denied"'));
  assert.deepEqual(parse(denied), [{ kind: "stdout", ts: TS, text: denied }]);
  const result = lines.flatMap(parse).find((e) => e.kind === "tool_result");
  assert.equal(result.isError, true);
  assert.match(result.content, /needs approval/);
});

test("max turns: the result carries the subtype and the CLI's errors", () => {
  const result = parse(transcript("05-error-max-turns.stream.jsonl").at(-1))[0];
  assert.equal(result.kind, "result");
  assert.equal(result.subtype, "error_max_turns");
  assert.equal(result.isError, true);
  assert.deepEqual(result.errors, ["Reached maximum number of turns (3)"]);
});

test("API failure: retries show as stdout, the result is an error with the API message", () => {
  const lines = transcript("06-api-500-retries-then-fail.stream.jsonl");
  const retries = lines.filter((l) => l.includes('"api_retry"'));
  assert.equal(retries.length, 2);
  for (const line of retries) assert.deepEqual(parse(line), [{ kind: "stdout", ts: TS, text: line }]);
  const result = parse(lines.at(-1))[0];
  assert.equal(result.subtype, "success");
  assert.equal(result.isError, true);
  assert.match(result.text, /API Error: 500/);
});

test("thinking blocks and user text blocks", () => {
  const line = JSON.stringify({
    type: "assistant",
    message: { content: [{ type: "thinking", thinking: "hmm" }, { type: "text", text: "ok" }] },
  });
  assert.deepEqual(parse(line), [
    { kind: "thinking", ts: TS, text: "hmm" },
    { kind: "assistant", ts: TS, text: "ok" },
  ]);
  const user = JSON.stringify({ type: "user", message: { content: [{ type: "text", text: "hi" }] } });
  assert.deepEqual(parse(user), [{ kind: "user", ts: TS, text: "hi" }]);
  const toolResultParts = JSON.stringify({
    type: "user",
    message: { content: [{ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }] },
  });
  assert.deepEqual(parse(toolResultParts), [{ kind: "tool_result", ts: TS, toolUseId: "t1", content: "a\nb", isError: false }]);
});

test("the adapter's own status and keepalive lines are system entries", () => {
  for (const line of ["[claude_k8s] pod ac-a-b-123456-xyz: Pending (ContainerCreating)", "[claude_k8s] still running (15s without output)"]) {
    assert.deepEqual(parse(line), [{ kind: "system", ts: TS, text: line }]);
  }
});

test("anything else is shown as stdout, never dropped", () => {
  for (const line of ["plain text", "", "[1,2,3]", "null", "{not json", JSON.stringify({ type: "rate_limit_event" }), JSON.stringify({ type: "assistant", message: { content: [] } })]) {
    assert.deepEqual(parse(line), [{ kind: "stdout", ts: TS, text: line }]);
  }
});
