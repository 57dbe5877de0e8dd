// UI transcript parser for claude_k8s runs, served by Paperclip at /api/adapters/claude_k8s/ui-parser.js.
//
// The Paperclip UI evaluates this file in a locked-down Web Worker as
//   new Function("exports", "module", "self", "globalThis", '"use strict";\n{\n' + source + "\n}")
// with self and globalThis undefined, so it is plain strict script: no import, export or require, no
// globals. It exports one pure function; the UI caches its answer per (line, ts) and structured-clones
// the entries, so it keeps no state and returns plain data.
//
// Each stdout line of a run becomes zero or more transcript entries. Claude's stream-json lines map
// exactly as the built-in claude_local parser maps them (@paperclipai/adapter-claude-local
// dist/ui/parse-stdout.js, identical in paperclipai 2026.824.1 and 2026.916.1). The adapter's own
// status and keepalive lines ("[claude_k8s] ...") become `system` entries; any other text is `stdout`.

var ADAPTER_LINE_PREFIX = "[claude_k8s]";

function asRecord(value) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  return value;
}

function asNumber(value) {
  return typeof value === "number" && isFinite(value) ? value : 0;
}

function asString(value, fallback) {
  return typeof value === "string" ? value : fallback;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (_error) {
    return null;
  }
}

function errorText(value) {
  if (typeof value === "string") return value;
  var record = asRecord(value);
  if (!record) return "";
  var message =
    (typeof record.message === "string" && record.message) ||
    (typeof record.error === "string" && record.error) ||
    (typeof record.code === "string" && record.code) ||
    "";
  if (message) return message;
  try {
    return JSON.stringify(record);
  } catch (_error) {
    return "";
  }
}

// Maps each content block of a message to at most one entry; blocks of other types are skipped.
function blockEntries(event, toEntry) {
  var message = asRecord(event.message) || {};
  var blocks = Array.isArray(message.content) ? message.content : [];
  var entries = [];
  blocks.forEach(function (raw) {
    var block = asRecord(raw);
    var entry = block ? toEntry(block) : null;
    if (entry) entries.push(entry);
  });
  return entries;
}

function assistantEntry(block, ts) {
  if (block.type === "text") {
    return block.text && typeof block.text === "string" ? { kind: "assistant", ts: ts, text: block.text } : null;
  }
  if (block.type === "thinking") {
    return block.thinking && typeof block.thinking === "string" ? { kind: "thinking", ts: ts, text: block.thinking } : null;
  }
  if (block.type === "tool_use") {
    return {
      kind: "tool_call",
      ts: ts,
      name: asString(block.name, "unknown"),
      toolUseId: typeof block.id === "string" ? block.id : asString(block.tool_use_id, undefined),
      input: block.input === undefined || block.input === null ? {} : block.input,
    };
  }
  return null;
}

function toolResultText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  var parts = [];
  content.forEach(function (raw) {
    var part = asRecord(raw);
    if (part && typeof part.text === "string") parts.push(part.text);
  });
  return parts.join("\n");
}

function userEntry(block, ts) {
  if (block.type === "text") {
    return block.text && typeof block.text === "string" ? { kind: "user", ts: ts, text: block.text } : null;
  }
  if (block.type === "tool_result") {
    return {
      kind: "tool_result",
      ts: ts,
      toolUseId: asString(block.tool_use_id, ""),
      content: toolResultText(block.content),
      isError: block.is_error === true,
    };
  }
  return null;
}

function resultEntry(event, ts) {
  var usage = asRecord(event.usage) || {};
  return {
    kind: "result",
    ts: ts,
    text: asString(event.result, ""),
    inputTokens: asNumber(usage.input_tokens),
    outputTokens: asNumber(usage.output_tokens),
    cachedTokens: asNumber(usage.cache_read_input_tokens),
    costUsd: asNumber(event.total_cost_usd),
    subtype: asString(event.subtype, ""),
    isError: event.is_error === true,
    errors: Array.isArray(event.errors) ? event.errors.map(errorText).filter(Boolean) : [],
  };
}

exports.parseStdoutLine = function parseStdoutLine(line, ts) {
  var text = typeof line === "string" ? line : String(line);
  var stdout = [{ kind: "stdout", ts: ts, text: text }];
  if (text.indexOf(ADAPTER_LINE_PREFIX) === 0) {
    return [{ kind: "system", ts: ts, text: text }];
  }
  var event = asRecord(parseJson(text));
  if (!event) return stdout;
  if (event.type === "system" && event.subtype === "init") {
    return [
      {
        kind: "init",
        ts: ts,
        model: asString(event.model, "unknown"),
        sessionId: asString(event.session_id, ""),
      },
    ];
  }
  if (event.type === "assistant") {
    var assistant = blockEntries(event, function (block) {
      return assistantEntry(block, ts);
    });
    return assistant.length > 0 ? assistant : stdout;
  }
  if (event.type === "user") {
    var user = blockEntries(event, function (block) {
      return userEntry(block, ts);
    });
    return user.length > 0 ? user : stdout;
  }
  if (event.type === "result") return [resultEntry(event, ts)];
  return stdout;
};
