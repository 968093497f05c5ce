"""guard-sdk serve: the guard as a local moderation endpoint (needs the serve extra)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import IO

from guard_sdk.cli.options import EXIT_OK, Subparsers, add_runtime, add_trusted_keys, command, positive_int
from guard_sdk.errors import InputError

API_KEY_ENV = "GUARD_SDK_API_KEY"


def register(sub: Subparsers) -> None:
    s = command(
        sub, "serve",
        help="serve a guard over HTTP: OpenAI's /v1/moderations, /v1/classify, a WebSocket stream, a playground page",
        description="Serve a guard bundle on HTTP (Starlette under uvicorn). POST /v1/moderations takes OpenAI's "
        "moderation request ({\"input\": str or [str]}) and answers in its schema, so the openai client works "
        "with base_url pointed here; POST /v1/classify takes {\"prompt\", \"response\"} (or {\"inputs\": [...]}) "
        "and answers with the full verdict (a request's own policy is a JSON object, never a file path); "
        "WS /v1/moderations/stream judges an LLM's response chunk by chunk; GET / is a playground page; "
        "GET /healthz; GET /metrics (Prometheus). With the environment variable named by --api-key-env set "
        f"({API_KEY_ENV} by default), every endpoint but /healthz and the page needs 'Authorization: Bearer KEY' "
        "(the page asks for it). Inputs of concurrent requests are scored in shared micro-batches. Errors are "
        "JSON: 400, 401, 413, 422, 429 (with Retry-After). Binds 127.0.0.1 unless told otherwise. "
        "docs/serving.md has curl and openai examples.",
        examples="  guard-sdk serve --port 8000\n"
        "  curl -s localhost:8000/v1/moderations -d '{\"input\": \"how do I make a pipe bomb?\"}'\n"
        "  GUARD_SDK_API_KEY=s3cret guard-sdk serve --bundle my-guard --policy policy.json",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    s.add_argument("--port", type=int, default=8000,
                   help="port (default: 8000; 0 picks a free one, named in the line printed at start)")
    s.add_argument("--policy", type=Path, metavar="FILE", default=None,
                   help="a policy file applied to every request that names none (docs/policy.md)")
    s.add_argument("--api-key-env", default=API_KEY_ENV, metavar="NAME",
                   help=f"the environment variable holding the API key (default: {API_KEY_ENV}; unset: no key)")
    s.add_argument("--max-batch", type=positive_int, default=64, help="inputs per request (default: 64)")
    s.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                   help="request body size limit (default: 1 MiB)")
    s.add_argument("--max-queue", type=positive_int, default=256,
                   help="inputs waiting to be scored, at least --max-batch; a request that does not fit is answered "
                   "429 with Retry-After (default: 256)")
    s.add_argument("--workers", type=positive_int, default=None,
                   help="micro-batches scored at once (default: the physical cores over the guard's threads)")
    add_runtime(s)
    add_trusted_keys(s)
    s.set_defaults(run=run_serve, extra="serve")


def run_serve(args: argparse.Namespace, out: IO[str]) -> int:
    import uvicorn

    from guard_sdk.guard import Guard
    from guard_sdk.serve.app import Limits, create_app

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be 0 to 65535, got {args.port}")
    guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                       policy=args.policy, trusted_keys=args.trusted_keys)
    api_key = os.environ.get(args.api_key_env) or None
    app = create_app(guard, api_key=api_key,
                     limits=Limits(args.max_body_bytes, args.max_batch, args.max_queue, args.workers))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    # Bound here rather than by uvicorn, whose bind exits with status 3 (ours for "unsafe") on a port in use, and
    # so that the line below names the port that --port 0 picked.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        raise InputError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror or e})") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"guard-sdk serve: {guard.manifest.name} on http://{host}:{sock.getsockname()[1]} "
          f"({'API key required' if api_key else 'no API key'}; the playground is at /)", file=sys.stderr)
    uvicorn.Server(config).run(sockets=[sock])
    return EXIT_OK
