#!/usr/bin/env python3
"""Stand-in for the Anthropic Messages API, to drive the real Claude Code CLI offline in tests.

Started by testbed/up on 127.0.0.1:18765 (stdlib only). Point the CLI at it with
ANTHROPIC_BASE_URL=http://127.0.0.1:18765 ANTHROPIC_API_KEY=test CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1.

POST /v1/messages answers according to keywords in the latest user text of the conversation, so
each test scripts its own run through its prompt and parallel tests do not interfere:

  (no keyword)  one text block "Hello from mock. Turn with N messages." (stop_reason end_turn)
  USE_TOOL      first a Bash tool_use running `echo hi` (or the command in CMD[...]), then, once the
                tool_result comes back, a final text "The tool printed: <output>"
  CMD[command]  the Bash command for USE_TOOL and LOOP_TOOL (no `]` inside)
  LOOP_TOOL     a Bash tool_use on every turn, to run into --max-turns
  SLOW[n]       the final text streams over n seconds: n text blocks "Slow part i of n.", one per
                second, each sent as several text deltas; the CLI prints one `assistant` event per
                block, so stream-json lines arrive about once a second. With an ERR keyword: the
                error answer is delayed by n seconds.
  BIG[n]        the final text is n KiB long (numbered lines of text, sent in 16 KiB deltas); the CLI
                prints it in one `assistant` event and again in the `result` event
  LINES[n]      the final answer is n text blocks "Line i of n.", so the CLI prints n `assistant`
                events (n stream-json lines) plus the `result`
  ERR401 ERR429 ERR500 ERR529 ERR400
                HTTP error with Anthropic's error JSON and `x-should-retry: false` (so the CLI gives
                up at once instead of retrying for minutes); the CLI ends with exit 1 and a `result`
                with "is_error":true and api_error_status
  ERR_SSE       HTTP 200, then an `event: error` (overloaded_error) in the middle of the stream; the
                CLI's non-streaming fallback then gets a normal answer (or 529 with SSE_FALLBACK_FAILS)
  MINIMAL       message_start without stop_reason fields and no ping (older API shape)
  NOUSAGE       message_start and message_delta without usage

Requests without `tools` (side requests such as title generation) always get a short text.
Each request is logged as one JSON line (time, path, session header, chosen mode, prompt head).
GET /healthz answers 200, for readiness checks.

usage: mock-anthropic.py [--port PORT] [--log FILE]
"""
import argparse
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {
    "ERR500": (500, "api_error", "Internal server error"),
    "ERR529": (529, "overloaded_error", "Overloaded"),
    "ERR401": (401, "authentication_error", "invalid x-api-key"),
    "ERR429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    "ERR400": (400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum"),
}
# Keywords choosing the mode, in priority order.
MODES = ["LOOP_TOOL", "USE_TOOL", "ERR_SSE"] + list(ERRORS)
# Size of each text delta of a BIG answer.
BIG_DELTA = 16 * 1024
# Text deltas per block of a SLOW answer.
SLOW_DELTAS_PER_BLOCK = 4
# Upper bounds on the numeric arguments, so that a typo cannot take the mock down.
MAX_SLOW_SECONDS = 3600
MAX_BIG_KIB = 64 * 1024
MAX_LINES = 100_000

LOG_LOCK = threading.Lock()
COUNTER = {"n": 0}
LOG_PATH = "mock-requests.jsonl"


def log(entry):
    with LOG_LOCK:
        with open(LOG_PATH, "a") as f:
            f.write(json.dumps(entry) + "\n")


def next_id():
    with LOG_LOCK:
        COUNTER["n"] += 1
        return COUNTER["n"]


def text_of(content):
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if b.get("type") == "text")


def tool_result_of(msg):
    """The text of the first tool_result block of a message, or None if it has none."""
    content = msg.get("content")
    if not isinstance(content, list):
        return None
    for b in content:
        if b.get("type") == "tool_result":
            c = b.get("content")
            return c if isinstance(c, str) else text_of(c)
    return None


def number(pattern, text, upper):
    m = re.search(pattern, text)
    return min(int(m.group(1)), upper) if m else None


def big_text(kib):
    """Numbered lines of text, exactly kib KiB long."""
    size = kib * 1024
    lines, total, i = [], 0, 0
    while total < size:
        i += 1
        line = "Big answer line %d: the quick brown fox jumps over the lazy dog.\n" % i
        lines.append(line)
        total += len(line)
    return "".join(lines)[:size]


class Plan:
    """What to answer to one /v1/messages request."""

    def __init__(self, body):
        msgs = body.get("messages") or []
        self.main = bool(body.get("tools"))
        self.prompt = next((text_of(m.get("content")) for m in reversed(msgs)
                            if m.get("role") == "user" and text_of(m.get("content")).strip()), "")
        last = msgs[-1] if msgs else {}
        self.tool_output = tool_result_of(last)
        self.n_messages = len(msgs)
        self.mode = next((kw for kw in MODES if kw in self.prompt), None) if self.main else None
        self.slow = number(r"SLOW\[(\d+)\]", self.prompt, MAX_SLOW_SECONDS) if self.main else None
        cmd = re.search(r"CMD\[(.*?)\]", self.prompt)
        self.cmd = cmd.group(1) if cmd else "echo hi"

    def blocks(self):
        """(blocks, stop_reason); a block is ("text", str) or ("tool_use", input dict)."""
        tool = ("tool_use", {"command": self.cmd, "description": "Run cmd"})
        if not self.main:
            return [("text", "Mock side reply")], "end_turn"
        if self.mode == "LOOP_TOOL":
            return [("text", "Running a tool again."), tool], "tool_use"
        if self.mode == "USE_TOOL" and self.tool_output is None:
            return [("text", "I'll run a command."), tool], "tool_use"
        big = number(r"BIG\[(\d+)\]", self.prompt, MAX_BIG_KIB)
        lines = number(r"LINES\[(\d+)\]", self.prompt, MAX_LINES)
        if self.slow:
            return [("text", "Slow part %d of %d." % (i, self.slow)) for i in range(1, self.slow + 1)], "end_turn"
        if big is not None:
            return [("text", big_text(big))], "end_turn"
        if lines is not None:
            return [("text", "Line %d of %d." % (i, lines)) for i in range(1, lines + 1)], "end_turn"
        if self.tool_output is not None:
            return [("text", "The tool printed: " + self.tool_output.strip()[:200])], "end_turn"
        return [("text", "Hello from mock. Turn with %d messages." % self.n_messages)], "end_turn"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_mock_" + uuid.uuid4().hex[:12])
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self):
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: not found"}})

    def do_GET(self):
        if self.path == "/healthz":
            return self._json(200, {"ok": True})
        if self.path.startswith("/v1/models"):
            return self._json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        return self._not_found()

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        n = next_id()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            return self._json(200, {"input_tokens": 42})
        if path != "/v1/messages":
            return self._not_found()
        plan = Plan(body)
        log({"n": n, "t": time.time(), "path": self.path,
             "session": self.headers.get("x-claude-code-session-id"), "main": plan.main,
             "mode": plan.mode, "stream": bool(body.get("stream")), "messages": plan.n_messages,
             "prompt": plan.prompt[-300:]})
        self.messages(body, plan, n)

    def messages(self, body, plan, n):
        model = body.get("model", "claude-mock")
        if plan.mode in ERRORS:
            if plan.slow:
                time.sleep(plan.slow)
            code, etype, msg = ERRORS[plan.mode]
            headers = {"x-should-retry": "false"}
            if code == 429:
                headers["retry-after"] = "1"
            return self._json(code, {"type": "error", "error": {"type": etype, "message": msg},
                                     "request_id": "req_mock_%d" % n}, headers)
        blocks, stop = plan.blocks()
        if not body.get("stream"):
            return self.whole(model, blocks, stop, plan, n)
        self.stream(model, blocks, stop, plan, n)

    def whole(self, model, blocks, stop, plan, n):
        if plan.mode == "ERR_SSE" and "SSE_FALLBACK_FAILS" in plan.prompt:
            return self._json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                              {"x-should-retry": "false"})
        content = [{"type": "text", "text": v} if k == "text" else
                   {"type": "tool_use", "id": "toolu_mock_" + uuid.uuid4().hex[:16], "name": "Bash", "input": v}
                   for k, v in blocks]
        self._json(200, {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model,
                         "content": content, "stop_reason": stop, "stop_sequence": None,
                         "usage": {"input_tokens": 100, "output_tokens": 10,
                                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})

    def stream(self, model, blocks, stop, plan, n):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_mock_%d" % n)
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(name, data):
            self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
            self.wfile.flush()

        minimal = "MINIMAL" in plan.prompt
        nousage = "NOUSAGE" in plan.prompt
        msg = {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model, "content": []}
        if minimal:
            msg.update(stop_reason=None, usage={"input_tokens": 5, "output_tokens": 0})
        elif not nousage:
            msg.update(stop_reason=None, stop_sequence=None,
                       usage={"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                              "output_tokens": 1})
        ev("message_start", {"type": "message_start", "message": msg})
        if not (minimal or nousage):
            ev("ping", {"type": "ping"})
        if plan.mode == "ERR_SSE":
            ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        # A SLOW answer spends one second per block, spread over its deltas.
        pause = 1.0 / SLOW_DELTAS_PER_BLOCK if plan.slow and stop == "end_turn" else 0
        for i, (kind, val) in enumerate(blocks):
            if kind == "text":
                ev("content_block_start", {"type": "content_block_start", "index": i,
                                           "content_block": {"type": "text", "text": ""}})
                for piece in self.pieces(val, pause):
                    if pause:
                        time.sleep(pause)
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "text_delta", "text": piece}})
            else:
                ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": "toolu_mock_" + uuid.uuid4().hex[:16], "name": "Bash", "input": {}}})
                js = json.dumps(val)
                for piece in (js[:10], js[10:]):
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "input_json_delta", "partial_json": piece}})
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        delta = {"type": "message_delta", "delta": {"stop_reason": stop}}
        if not nousage:
            delta["delta"]["stop_sequence"] = None
            delta["usage"] = {"output_tokens": 12}
        ev("message_delta", delta)
        ev("message_stop", {"type": "message_stop"})

    @staticmethod
    def pieces(text, pause):
        """The text deltas of one block: SLOW_DELTAS_PER_BLOCK of them when slow, else two halves,
        or BIG_DELTA-sized chunks for long texts."""
        if pause:
            step = max(1, -(-len(text) // SLOW_DELTAS_PER_BLOCK))
        elif len(text) > BIG_DELTA:
            step = BIG_DELTA
        else:
            step = max(1, -(-len(text) // 2))
        return [text[i:i + step] for i in range(0, len(text), step)] or [""]


def main():
    global LOG_PATH
    ap = argparse.ArgumentParser(description="Stand-in for the Anthropic Messages API")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--log", default=LOG_PATH, help="JSON-lines request log")
    args = ap.parse_args()
    LOG_PATH = args.log
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("mock Anthropic API on 127.0.0.1:%d, request log %s" % (args.port, LOG_PATH), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
