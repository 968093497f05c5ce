"""The ASGI app of ``guard-sdk serve`` (Starlette): OpenAI's ``POST /v1/moderations``, ``POST /v1/classify`` with
our full verdict, a WebSocket ``/v1/moderations/stream`` that judges a response chunk by chunk (``Guard.stream``),
``GET /healthz`` and ``GET /metrics`` (Prometheus text).

Every answer is JSON, errors included (400 bad JSON, 401 wrong or missing key, 413 too large, 422 a field or text
the guard cannot take, 429 a full queue, with Retry-After; 500 without a traceback). Inputs of all requests are
scored in shared micro-batches (``batcher``), each verdict ``classify_batch``'s on its input.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from guard_sdk.backends import physical_cores
from guard_sdk.errors import InputError, PolicyError
from guard_sdk.guard import Guard, Verdict
from guard_sdk.policy import Policy
from guard_sdk.serve.batcher import Batcher, QueueFull
from guard_sdk.serve.moderation import moderation_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # a request body larger than this is refused (413) before it is parsed
    max_batch: int = 64  # inputs in one request, and in one model call across requests
    max_queue: int = 256  # inputs waiting to be scored; a request that does not fit gets 429
    workers: int | None = None  # batches scored at once; None: the physical cores over the guard's threads


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error shape, so its client raises the matching exception class."""
    return JSONResponse({"error": _error_body(status, message, kind)}, status, headers=headers)


def _error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    # A message may quote the client's text, and JSON "\ud800" parses to a lone surrogate that UTF-8 cannot encode.
    return {"message": message.encode("utf-8", "backslashreplace").decode("utf-8"), "type": kind, "code": status}


def parse_json(raw: bytes) -> Any:
    """A request's JSON (a body, a WebSocket message); HTTPError 400 when it is not JSON, or nested too deep to
    parse (json raises RecursionError there)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise HTTPError(400, "the body is not JSON: nested too deep") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPError(400, f"the body is not JSON: {e}") from None


def client_policy(data: Mapping[str, Any]) -> Policy | None:
    """A request's own policy: a JSON object, or absent. Never a path: a client must not make the server open
    files (a FIFO would stall a worker; the answer would tell which files exist)."""
    given = data.get("policy")
    if given is None:
        return None
    if not isinstance(given, dict):
        raise HTTPError(422, "policy must be a JSON object (docs/policy.md); the server reads no policy file for a "
                        "client")
    return Policy.from_dict(given)


class Metrics:
    """The Prometheus metrics of one app, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("guard_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("guard_request_seconds", "Time to answer a request, by endpoint", ["endpoint"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.queue = Gauge("guard_queue_depth", "Inputs waiting to be scored", registry=self.registry)
        self.verdicts = Counter("guard_verdicts", "Inputs judged, by verdict", ["unsafe"], registry=self.registry)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def create_app(guard: Guard, *, api_key: str | None = None, limits: Limits = Limits()) -> Starlette:
    """The app serving ``guard``; ``api_key``: when set, every endpoint but /healthz and the playground page (static:
    it asks for the key when its request is refused) needs ``Authorization: Bearer`` with it."""
    if limits.max_queue < limits.max_batch:
        raise InputError(f"max_queue ({limits.max_queue}) must hold at least one full request (max_batch, "
                         f"{limits.max_batch}), else such a request would be answered 429 for ever")
    metrics = Metrics()
    workers = limits.workers or max(1, physical_cores() // (guard.threads or 1))
    batcher = Batcher(guard, workers, limits.max_batch, limits.max_queue)

    def authorise(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise HTTPError(401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error")

    async def body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise HTTPError(413, f"the body has {declared} bytes; the limit is {limits.max_body_bytes}")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limits.max_body_bytes:
                raise HTTPError(413, f"the body is over the limit of {limits.max_body_bytes} bytes")
        return parse_json(raw)

    async def scored(endpoint: str, request: Request, work: Any) -> Response:
        """Answer with ``await work(data)`` of the request's JSON body, with metrics and JSON errors."""
        start = time.perf_counter()
        status = 200
        try:
            authorise(request)
            answer = await work(await body(request))
            response: Response = JSONResponse(answer)
        except QueueFull as e:
            status = 429
            response = _error(429, str(e), "rate_limit_error", {"Retry-After": "1"})
        except HTTPError as e:
            status = e.status
            response = _error(e.status, e.message, e.kind, {"Retry-After": "1"} if e.status == 429 else None)
        except (InputError, PolicyError) as e:
            status = 422
            response = _error(422, str(e), "invalid_request_error")
        except Exception:  # never a traceback to the client; the log keeps it
            log.exception("%s failed", endpoint)
            status = 500
            response = _error(500, "the guard failed on this request; see the server log", "server_error")
        metrics.requests.labels(endpoint, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
        metrics.queue.set(batcher.depth)
        return response

    async def judged(prompts: list[str], responses: list[str | None], policy: Any = None) -> list[Verdict]:
        """The batcher's verdicts on a request's inputs; the first bad input fails the request, named."""
        metrics.queue.set(batcher.depth + len(prompts))
        found = await batcher.score(prompts, responses, policy)
        for i, verdict in enumerate(found):
            if isinstance(verdict, InputError):
                raise InputError(f"input {i}: {verdict}") if len(found) > 1 else verdict
        verdicts = [v for v in found if isinstance(v, Verdict)]
        for v in verdicts:
            metrics.verdicts.labels(str(v.unsafe).lower()).inc()
        return verdicts

    def texts_of(data: Any) -> list[str]:
        if not isinstance(data, dict) or "input" not in data:
            raise HTTPError(422, 'expected {"input": a string or a list of strings}')
        given = data["input"]
        items = [given] if isinstance(given, str) else given
        if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
            raise HTTPError(422, "input must be a string or a non-empty list of strings")
        if len(items) > limits.max_batch:
            raise HTTPError(413, f"{len(items)} inputs; the limit is {limits.max_batch} per request")
        return items

    async def moderate(data: Any) -> dict[str, Any]:
        texts = texts_of(data)
        model = data.get("model") or guard.manifest.name
        if not isinstance(model, str) or not model.isprintable() or len(model) > 256:
            raise HTTPError(422, "model must be a string of at most 256 printable characters")
        verdicts = await judged(texts, [None] * len(texts))
        return moderation_response(model, verdicts)

    async def classify(data: Any) -> dict[str, Any]:
        single = isinstance(data, dict) and "prompt" in data
        items = [data] if single else data.get("inputs") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and "prompt" in i for i in items):
            raise HTTPError(422, 'expected {"prompt": ..., "response": ...} or {"inputs": [such objects]}')
        if len(items) > limits.max_batch:
            raise HTTPError(413, f"{len(items)} inputs; the limit is {limits.max_batch} per request")
        policy = client_policy(data) if isinstance(data, dict) else None
        verdicts = await judged([i["prompt"] for i in items], [i.get("response") for i in items], policy)
        answers = [v.to_dict() for v in verdicts]
        return answers[0] if single else {"results": answers}

    async def moderations(request: Request) -> Response:
        return await scored("/v1/moderations", request, moderate)

    async def classify_endpoint(request: Request) -> Response:
        return await scored("/v1/classify", request, classify)

    async def playground(_: Request) -> Response:
        page = resources.files("guard_sdk.serve").joinpath("static/playground.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "model": guard.manifest.name, "categories": guard.categories})

    async def metrics_endpoint(request: Request) -> Response:
        try:
            authorise(request)
        except HTTPError as e:
            return _error(e.status, e.message, e.kind)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    async def received(socket: WebSocket) -> Any:
        """The next message's JSON, text frame or binary (UTF-8), within the body limit."""
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text, raw = message.get("text"), message.get("bytes")
        data = raw if raw is not None else (text or "").encode("utf-8")
        if len(data) > limits.max_body_bytes:
            raise HTTPError(413, f"the message is over the limit of {limits.max_body_bytes} bytes")
        return parse_json(data)

    async def stream(socket: WebSocket) -> None:
        """One streamed response: {"prompt", "threshold"?, "policy"?} first, then {"chunk": text} messages, each
        answered with the verdict on the response so far (Guard.stream); an error is sent, then the socket closes."""
        given = socket.headers.get("authorization", "")
        if api_key is not None and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            await socket.close(code=1008, reason="missing or wrong API key")
            return
        await socket.accept()
        try:
            start = await received(socket)
            if not isinstance(start, dict) or "prompt" not in start:
                raise HTTPError(422, 'the first message must be {"prompt": ..., "threshold": optional, '
                                '"policy": optional}')
            streamed = await run_in_threadpool(guard.stream, start["prompt"], threshold=start.get("threshold"),
                                               policy=client_policy(start))
            while True:
                message = await received(socket)
                if not isinstance(message, dict) or "chunk" not in message:
                    break  # {"end": true}, or anything else, ends the stream
                step = await run_in_threadpool(streamed.feed, message["chunk"])
                metrics.verdicts.labels(str(step.verdict.unsafe).lower()).inc()
                await socket.send_json({"chunk": step.chunk, "unsafe": step.verdict.unsafe,
                                        "first_unsafe_chunk": step.first_unsafe_chunk,
                                        "scored_windows": step.scored_windows, "ms": round(step.seconds * 1000, 3),
                                        "verdict": step.verdict.to_dict()})
        except WebSocketDisconnect:
            return
        except HTTPError as e:
            await socket.send_json({"error": _error_body(e.status, e.message, e.kind)})
        except (InputError, ValueError) as e:
            await socket.send_json({"error": _error_body(422, str(e), "invalid_request_error")})
        await socket.close()

    async def not_routed(_: Request, e: Exception) -> Response:
        status = e.status_code if isinstance(e, StarletteHTTPException) else 500
        return _error(status, str(getattr(e, "detail", "")) or "no such endpoint", "invalid_request_error")

    return Starlette(routes=[
        Route("/v1/moderations", moderations, methods=["POST"]),
        Route("/v1/classify", classify_endpoint, methods=["POST"]),
        Route("/", playground, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        WebSocketRoute("/v1/moderations/stream", stream),
    ], exception_handlers={StarletteHTTPException: not_routed})
