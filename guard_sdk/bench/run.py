"""Plan the configurations of a benchmark (bundle × artifact × threads × length) and measure each in a child
process, with a progress bar; a configuration that fails is recorded with its error, not fatal to the run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from guard_sdk.backends import BACKENDS, runs_here
from guard_sdk.bench.flops import input_flops
from guard_sdk.bench.worker import Config
from guard_sdk.bundle import read_manifest
from guard_sdk.errors import InputError

LENGTHS = (16, 64, 128, 256, 512)  # tokens per input: a short prompt up to a long prompt+response
# None: the runtime's default (Guard.load(threads=None)), measured beside the counts it chooses between;
# 1 and 2: the big and the little cluster of a phone, as far as a laptop can say.
THREADS: tuple[int | None, ...] = (None, 1, 2)


def plan(bundles: Sequence[str | Path], *, backends: Sequence[str] | None = None,
         precisions: Sequence[str] | None = None, lengths: Sequence[int] = LENGTHS,
         threads: Sequence[int | None] = THREADS, batch: int = 1, warmup: int = 10,
         runs: int = 100) -> list[Config]:
    """Every artifact of every bundle that a chosen backend runs on this platform, at each thread count (None:
    the runtime's default) and length. Refuses an unknown backend, and a choice that leaves nothing to measure."""
    unknown = sorted(set(backends or ()) - set(BACKENDS))
    if unknown:
        raise InputError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    configs = []
    for bundle in bundles:
        for artifact in read_manifest(Path(bundle)).artifacts:
            for backend, info in BACKENDS.items():
                if info.format != artifact.format or not runs_here(backend):
                    continue
                if (backends and backend not in backends) or (precisions and artifact.precision not in precisions):
                    continue
                configs += [Config(str(bundle), backend, artifact.precision, n, length, batch, warmup, runs)
                            for n in threads for length in lengths]
    if not configs:
        raise InputError("nothing to measure: no artifact of these bundles matches the backends and precisions "
                         "asked for and runs on this platform")
    return configs


REFERENCES = ("transformers", "optimum")


def source_checkpoint(bundle: str | Path) -> Path | None:
    """The PyTorch checkpoint a bundle was exported from, where it is still on this machine."""
    source = read_manifest(Path(bundle)).source.get("checkpoint")
    return Path(source) if source and (Path(source) / "config.json").is_file() else None


def plan_references(bundle: str | Path, checkpoint: str | Path | None, *, lengths: Sequence[int] = LENGTHS,
                    threads: Sequence[int | None] = THREADS, batch: int = 1, warmup: int = 10,
                    runs: int = 100) -> list[Config]:
    """The reference pipelines on ``checkpoint`` (default: the bundle's source) at each explicit thread count
    (the runtime's default is ours alone) and at the lengths that fit one window (the pipelines truncate where
    our runtime windows)."""
    checkpoint = checkpoint or source_checkpoint(bundle)
    if checkpoint is None:
        raise InputError(f"{bundle}: its source checkpoint is not on this machine; name one with --checkpoint")
    fits = [n for n in lengths if n <= read_manifest(Path(bundle)).max_length]
    return [Config(str(bundle), "reference", "fp32", n, length, batch, warmup, runs, reference, str(checkpoint))
            for reference in REFERENCES for n in threads if n is not None for length in fits]


def measure_in_child(config: Config, timeout_s: float = 1800) -> dict[str, Any]:
    """``worker.measure`` in a fresh interpreter; a failure comes back as {"config", "error"}."""
    command = [sys.executable, "-m", "guard_sdk.bench.worker", json.dumps(asdict(config))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"config": asdict(config), "error": f"took over {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"config": asdict(config), "error": done.stderr.strip().splitlines()[-1] if done.stderr else
                f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(configs: Sequence[Config], progress: bool = True) -> list[dict[str, Any]]:
    from tqdm import tqdm

    records = []
    if configs:
        # The first process after an idle spell runs slow (measured: the same configuration first in a run had a
        # p50 1.37x its p50 later in the run), so one short untimed process runs before any that count.
        measure_in_child(replace(configs[0], runs=configs[0].warmup))
    bar = tqdm(configs, desc="bench", unit="config", disable=not progress)
    for config in bar:
        bar.set_postfix_str(f"{Path(config.bundle).name} {config.reference or config.backend} {config.precision} "
                            f"{'default' if config.threads is None else config.threads} threads {config.tokens} tokens")
        records.append(with_flops(measure_in_child(config)))
    return records


def with_flops(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the FLOPs of one call and the GFLOP/s its trimmed-mean latency achieves."""
    if "error" in record:
        return record
    c = record["config"]
    flops = input_flops(c["bundle"], record["window_lengths"], c["batch"])
    achieved = flops / record["latency"]["trimmed_mean_ms"] / 1e6 if flops else None
    return {**record, "flops_per_call": flops, "gflops_per_s": achieved}
