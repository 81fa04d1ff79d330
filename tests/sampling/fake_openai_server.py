"""A small OpenAI-compatible chat completions server for testing ``OpenAIBackend`` over real HTTP.

Run as ``python fake_openai_server.py [--port N]``: it binds 127.0.0.1 (port 0 = any free one)
and prints ``listening on <port>`` once it accepts connections, so a test can start it as a
separate process and read the port instead of guessing a free one.

Behaviour is switched at run time with ``POST /_control`` ``{"behaviour": NAME, "failures": N}``,
which also clears the request log; ``GET /_requests`` returns the logged chat requests (path,
headers, JSON body). Behaviours of ``/v1/chat/completions``:

* ``ok``: a completion echoing the last user message;
* ``500-then-ok``: HTTP 500 for the first ``failures`` requests (default 1), then ``ok``;
* ``always-500``: HTTP 500 with an OpenAI error body;
* ``garbage``: HTTP 200 with a body that is not JSON;
* ``no-choices``: HTTP 200 with JSON that lacks ``choices``;
* ``401``: HTTP 401 with ``{"error": {"message": "Invalid API key provided", ...}}``;
* ``slow``: sleep ``delay`` seconds (default 5) before answering ``ok``;
* ``varied``: like ``ok``, with the request's temperature and seed in the reply, so two differently
  sampled requests get different replies (as a real model's would);
* ``same-then-varied``: ``ok`` for the first ``failures`` requests, then ``varied``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "500-then-ok", "always-500", "garbage", "no-choices", "401", "slow", "varied", "same-then-varied")


class State:
    """Mutable server state shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.behaviour = "ok"
        self.failures = 1
        self.delay = 5.0
        self.requests: list[dict[str, object]] = []


STATE = State()


def completion(body: dict[str, object], varied: bool = False) -> dict[str, object]:
    """An OpenAI-shaped chat completion that echoes the last message, so tests can match replies."""
    messages = body.get("messages") or [{"content": ""}]
    last = str(messages[-1].get("content", ""))
    if varied:
        last += f" (temperature {body.get('temperature')}, seed {body.get('seed')})"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body.get("model", "fake"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f" echo: {last} "}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": len(json.dumps(messages)) // 4, "completion_tokens": 3, "total_tokens": 0},
    }


class Handler(BaseHTTPRequestHandler):
    """Routes ``/v1/chat/completions`` by the current behaviour, plus the two test-control routes."""

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the test's output is what matters."""

    def _send(self, status: int, payload: object, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> dict[str, object]:
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        if self.path == "/_requests":
            with STATE.lock:
                self._send(200, STATE.requests)
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if self.path == "/_control":
            settings = self._read_json()
            if settings.get("behaviour", "ok") not in BEHAVIOURS:
                self._send(400, {"error": {"message": f"unknown behaviour; choose from {', '.join(BEHAVIOURS)}"}})
                return
            with STATE.lock:
                STATE.behaviour = str(settings.get("behaviour", "ok"))
                STATE.failures = int(settings.get("failures", 1))
                STATE.delay = float(settings.get("delay", 5.0))
                STATE.requests.clear()
            self._send(200, {"behaviour": STATE.behaviour})
            return
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = self._read_json()
        with STATE.lock:
            STATE.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            seen = len(STATE.requests)
            behaviour, failures, delay = STATE.behaviour, STATE.failures, STATE.delay
        if behaviour == "slow":
            time.sleep(delay)
        if behaviour == "always-500" or (behaviour == "500-then-ok" and seen <= failures):
            self._send(500, {"error": {"message": "upstream model crashed", "type": "server_error"}})
        elif behaviour == "garbage":
            self._send(200, None, raw=b"<html>502 Bad Gateway, but with a 200</html>")
        elif behaviour == "no-choices":
            self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
        elif behaviour == "401":
            error = {"message": "Invalid API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
            self._send(401, {"error": error})
        elif behaviour == "varied" or (behaviour == "same-then-varied" and seen > failures):
            self._send(200, completion(body, varied=True))
        else:
            self._send(200, completion(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
