"""A small OpenAI-compatible /v1/completions server over a local causal LM, for testing the HTTP client
against the real wire format: it binds 127.0.0.1 on a free port and can fail or stall on purpose. It records
when each request arrived (``arrivals``, monotonic seconds) so tests can check the client's waits."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CompletionsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: Any, tokenizer: Any, fail_first: int = 0, fail_status: int = 503,
                 retry_after: str | None = None, delays: tuple[float, ...] = ()) -> None:
        """The first ``fail_first`` requests get ``fail_status``, with ``Retry-After: retry_after`` if given."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.model, self.tokenizer = model, tokenizer
        self.fail_first, self.fail_status, self.retry_after, self.delays = fail_first, fail_status, retry_after, delays
        self.requests = self.inflight = self.max_inflight = 0
        self.arrivals: list[float] = []
        self.lock, self.model_lock = threading.Lock(), threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        import torch

        ids = self.tokenizer(body["prompt"], return_tensors="pt", add_special_tokens=False,
                             return_token_type_ids=False)
        with self.model_lock, torch.inference_mode():
            if body.get("logprobs"):
                logprobs = torch.log_softmax(self.model(**ids).logits[0, -1].double(), dim=-1)
                top = torch.topk(logprobs, min(int(body["logprobs"]), logprobs.numel()))
                tokens = self.tokenizer.convert_ids_to_tokens(top.indices.tolist())
                choice = {"text": self.tokenizer.decode(top.indices[:1]),
                          "logprobs": {"tokens": tokens[:1], "token_logprobs": [top.values[0].item()],
                                       "top_logprobs": [dict(zip(tokens, top.values.tolist()))]}}
            else:
                torch.manual_seed(body.get("seed") or 0)
                temperature = body.get("temperature", 1.0)
                out = self.model.generate(**ids, max_new_tokens=body.get("max_tokens", 16),
                                          do_sample=temperature > 0, temperature=temperature or None,
                                          top_p=body.get("top_p", 1.0), pad_token_id=self.tokenizer.pad_token_id)
                choice = {"text": self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True),
                          "logprobs": None}
        return {"id": "cmpl-test", "object": "text_completion", "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "length", **choice}]}


class _Handler(BaseHTTPRequestHandler):
    server: CompletionsServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
        srv = self.server
        with srv.lock:
            srv.arrivals.append(time.monotonic())
            srv.requests += 1
            number = srv.requests
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            if number <= len(srv.delays):
                time.sleep(srv.delays[number - 1])
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/completions":
                reply: tuple[int, dict[str, Any], dict[str, str]] = (404, {"error": "not found"}, {})
            elif number <= srv.fail_first:
                headers = {"Retry-After": srv.retry_after} if srv.retry_after is not None else {}
                reply = (srv.fail_status, {"error": "overloaded"}, headers)
            else:
                reply = (200, srv.answer(body), {})
        finally:
            # Out of flight before the answer leaves: a client that sends its next request the moment it reads
            # this one must not find it still counted (on a loaded machine this thread may run late).
            with srv.lock:
                srv.inflight -= 1
        try:
            self._send(*reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def start(model: Any, tokenizer: Any, **faults: Any) -> CompletionsServer:
    server = CompletionsServer(model, tokenizer, **faults)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
