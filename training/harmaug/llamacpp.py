"""A GGUF model served by llama.cpp inside this process (the ``xllamacpp`` wheel), on 127.0.0.1 only.

llama.cpp runs a quantized 1.5B model 20-40x faster than transformers on a CPU (35 tokens/s on 2 cores against
~1), and its server speaks the OpenAI completions API: the generator, responder and Llama-Guard-style judge
reach it through the same ``CompletionsClient`` as any remote server, with its retries and concurrency.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from guard_sdk.errors import InputError

CONTEXT_PER_SLOT = 2048  # tokens: a request with its k exemplars, or an instruction with its answer
LOG_WARNINGS = 2  # llama.cpp's log levels: 1 errors, 2 warnings, 3 information


class LlamaCppServer:
    """llama.cpp's server in this process; it stops when this object is closed or collected."""

    def __init__(self, gguf: str | Path, parallel: int = 1, threads: int | None = None) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise InputError("backend llamacpp needs the xllamacpp package: pip install 'guard-sdk[train]'") from e
        path = Path(gguf)
        if not path.is_file():
            raise InputError(f"{path}: no GGUF file there (make standins builds the offline stand-ins)")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = parallel
        params.n_ctx = CONTEXT_PER_SLOT * parallel
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or min(os.cpu_count() or 1, 8)
        params.hostnames = ["127.0.0.1"]
        params.verbosity = LOG_WARNINGS  # its default logs every slot and token count: thousands of lines a stage
        self.server: Any = xllamacpp.Server(params)
        self.base_url: str = self.server.listening_address
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.close()
            raise InputError(f"llama.cpp listens on {self.base_url}, not on 127.0.0.1; refusing to serve there")

    def close(self) -> None:
        self.server = None  # xllamacpp stops its server thread in the destructor
