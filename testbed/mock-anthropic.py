#!/usr/bin/env python3
"""Minimal mock of the Anthropic Messages API for driving the real Claude Code CLI offline.

Listens on 127.0.0.1:PORT. Logs every request (method, path, headers, body) as JSON lines.

Behaviour of POST /v1/messages is chosen from the *first* user text of the conversation
(keywords), or forced server-wide via POST /__mode {"mode": "..."}:
  (default)      one text block "Hello from mock" (stop_reason end_turn)
  USE_TOOL       first turn: tool_use Bash {"command":"echo hi"}; after tool_result: final text
  LOOP_TOOL      always tool_use (to hit --max-turns)
  ERR500/ERR529/ERR401/ERR429/ERR400  HTTP error with Anthropic error JSON
  ERR_SSE        HTTP 200, SSE stream with an `event: error` overloaded_error mid-stream
Side requests (no `tools` in body, e.g. title generation) always get a short text reply
unless the mode is forced with apply_to_all.
"""
import json, os, re, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("MOCK_PORT", "8765"))
LOG = os.environ.get("MOCK_LOG", "mock-requests.jsonl")
STATE = {"mode": None, "apply_to_all": False, "count": 0}
LOCK = threading.Lock()

ERRORS = {
    "ERR500": (500, "api_error", "Internal server error"),
    "ERR529": (529, "overloaded_error", "Overloaded"),
    "ERR401": (401, "authentication_error", "invalid x-api-key"),
    "ERR429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    "ERR400": (400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum"),
}


def log(entry):
    with LOCK:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


def text_of(content):
    if isinstance(content, str):
        return content
    out = []
    for b in content or []:
        if b.get("type") == "text":
            out.append(b.get("text", ""))
    return "\n".join(out)


def has_tool_result(msg):
    c = msg.get("content")
    return isinstance(c, list) and any(b.get("type") == "tool_result" for b in c)


def tool_result_text(msg):
    for b in msg.get("content") or []:
        if b.get("type") == "tool_result":
            c = b.get("content")
            return text_of(c) if not isinstance(c, str) else c
    return ""


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return raw, json.loads(raw) if raw else None
        except Exception:
            return raw, None

    def _record(self, body_json, raw):
        with LOCK:
            STATE["count"] += 1
            n = STATE["count"]
        log({"n": n, "t": time.time(), "method": self.command, "path": self.path,
             "headers": dict(self.headers.items()),
             "body": body_json if body_json is not None else raw.decode("utf-8", "replace")[:4000]})
        return n

    def _json(self, code, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_mock_" + uuid.uuid4().hex[:12])
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._record(None, b"")
        # Anything on GET: harmless empty JSON / 404
        if self.path.startswith("/v1/models"):
            return self._json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: not found"}})

    def do_HEAD(self):
        self._record(None, b"")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        raw, body = self._body()
        n = self._record(body, raw)
        path = self.path.split("?")[0]
        if path == "/__mode":
            STATE["mode"] = (body or {}).get("mode")
            STATE["apply_to_all"] = bool((body or {}).get("apply_to_all"))
            return self._json(200, {"ok": True, "state": STATE})
        if path == "/v1/messages/count_tokens":
            return self._json(200, {"input_tokens": 42})
        if path != "/v1/messages":
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: not found"}})
        return self.messages(body or {}, n)

    # ------------------------------------------------------------------
    def messages(self, body, n):
        model = body.get("model", "claude-mock")
        msgs = body.get("messages") or []
        is_main = bool(body.get("tools"))
        # keyword source: the latest user message that carries text (not just tool_result blocks)
        first_user = next((text_of(m.get("content")) for m in reversed(msgs)
                           if m.get("role") == "user" and text_of(m.get("content")).strip()), "")
        last = msgs[-1] if msgs else {}
        mode = STATE["mode"]
        if mode is None or (not is_main and not STATE["apply_to_all"]):
            mode = None
            if is_main:
                for kw in ["LOOP_TOOL", "USE_TOOL", "ERR_SSE"] + list(ERRORS):
                    if kw in first_user:
                        mode = kw
                        break
        ms = re.search(r"SLOW\[(\d+)\]", first_user)
        if ms and is_main:
            time.sleep(int(ms.group(1)))
        if mode in ERRORS:
            code, etype, msg = ERRORS[mode]
            hdrs = {"x-should-retry": "false"} if (os.environ.get("MOCK_NO_RETRY") or "NORETRY" in first_user) else {}
            if code == 429:
                hdrs["retry-after"] = "1"
            return self._json(code, {"type": "error", "error": {"type": etype, "message": msg},
                                     "request_id": "req_mock"}, hdrs)

        # Decide content blocks

        mcmd = re.search(r"CMD\[(.*?)\]", first_user)
        cmd = mcmd.group(1) if mcmd else "echo hi"
        if not is_main:
            blocks = [("text", "Mock side reply")]
            stop = "end_turn"
        elif mode == "LOOP_TOOL":
            blocks = [("text", "Running a tool again."), ("tool_use", {"command": cmd, "description": "Run cmd"})]
            stop = "tool_use"
        elif mode == "USE_TOOL" and not has_tool_result(last):
            blocks = [("text", "I'll run a command."), ("tool_use", {"command": cmd, "description": "Run cmd"})]
            stop = "tool_use"
        elif has_tool_result(last):
            blocks = [("text", "The tool printed: " + tool_result_text(last).strip()[:200])]
            stop = "end_turn"
        else:
            blocks = [("text", "Hello from mock. Turn with %d messages." % len(msgs))]
            stop = "end_turn"

        if not body.get("stream"):
            if mode == "ERR_SSE" and "SSE_FALLBACK_FAILS" in first_user:
                return self._json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            content = []
            for kind, val in blocks:
                if kind == "text":
                    content.append({"type": "text", "text": val})
                else:
                    content.append({"type": "tool_use", "id": "toolu_mock_" + uuid.uuid4().hex[:16], "name": "Bash", "input": val})
            return self._json(200, {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model,
                                    "content": content, "stop_reason": stop, "stop_sequence": None,
                                    "usage": {"input_tokens": 100, "output_tokens": 10,
                                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})

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

        minimal = "MINIMAL" in first_user
        nousage = "NOUSAGE" in first_user
        if nousage:
            ms_msg = {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model, "content": []}
        elif minimal:
            ms_msg = {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model, "content": [],
                      "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 0}}
        else:
            ms_msg = {"id": "msg_mock_%d" % n, "type": "message", "role": "assistant", "model": model, "content": [],
                      "stop_reason": None, "stop_sequence": None,
                      "usage": {"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                                "output_tokens": 1}}
        ev("message_start", {"type": "message_start", "message": ms_msg})
        if not (minimal or nousage):
            ev("ping", {"type": "ping"})
        if mode == "ERR_SSE":
            ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        for i, (kind, val) in enumerate(blocks):
            if kind == "text":
                ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                half = len(val) // 2
                for piece in (val[:half], val[half:]):
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "text_delta", "text": piece}})
            else:
                ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": "toolu_mock_" + uuid.uuid4().hex[:16], "name": "Bash", "input": {}}})
                js = json.dumps(val)
                ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                           "delta": {"type": "input_json_delta", "partial_json": js[:10]}})
                ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                           "delta": {"type": "input_json_delta", "partial_json": js[10:]}})
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        if nousage:
            ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop}})
        else:
            ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                 "usage": {"output_tokens": 12}})
        ev("message_stop", {"type": "message_stop"})


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=PORT)
    ap.add_argument("--log", default=LOG)
    a = ap.parse_args()
    PORT, LOG = a.port, a.log
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
    print("mock listening on 127.0.0.1:%d log=%s" % (PORT, LOG), flush=True)
    srv.serve_forever()
