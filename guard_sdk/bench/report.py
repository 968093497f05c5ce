"""A benchmark's records as JSON (with the machine), a markdown table, and a plot of latency against length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guard_sdk.marked import marked_blocks

MB = 1e6


def threads_label(record: dict[str, Any]) -> str:
    """A record's thread count as asked; for the runtime's default, "default" and the count it chose."""
    asked, used = record["config"]["threads"], record.get("threads_used")
    if asked is not None:
        return str(asked)
    return "default" if used is None else f"default ({used})"


def to_markdown(records: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    flags = ", ".join(machine["isa_flags"]) or "none listed"
    head = (f"Machine: {machine['cpu']}, {machine['usable_cpus']} usable of {machine['logical_cpus']} logical CPUs, "
            f"{machine['arch']} ({flags}); {machine['os']}; python {machine['python']}; "
            + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items()) + "\n\n")
    cols = "| bundle | artifact | backend | threads | tokens | windows | batch | load ms | first call ms | p50 ms | " \
           "p90 ms | p99 ms | trimmed mean ms | inputs/s | GFLOP/call | GFLOP/s | peak RSS MB | file MB | " \
           "× raw session |\n"
    rows = ""
    for r in records:
        c = r["config"]
        if "error" in r:
            rows += (f"| {Path(c['bundle']).name} | {c['precision']} | {c['backend']} | {threads_label(r)} | "
                     f"{c['tokens']} | – | {c['batch']} | failed: {r['error']} |" + " – |" * 11 + "\n")
            continue
        s = r["latency"]
        rows += (f"| {Path(c['bundle']).name} | `{r['artifact']['path']}` | {r['backend']} | {threads_label(r)} | "
                 f"{r['tokens_per_input']} | {r['windows_per_input']} | {c['batch']} | {r['load_ms']:.1f} | "
                 f"{r['first_call_ms']:.1f} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | "
                 f"{s['trimmed_mean_ms']:.2f} | {r['inputs_per_s']:.1f} | {_gflop(r.get('flops_per_call'))} | "
                 f"{_gflop(r.get('gflops_per_s'), 1e0)} | {r['peak_rss_bytes'] / MB:.0f} | "
                 f"{r['artifact']['bytes'] / MB:.1f} | "
                 + (f"{r['over_raw_session']:.2f} |\n" if r["over_raw_session"] else "– |\n"))
    note = ("\n× raw session: our classify() p50 over a bare onnxruntime InferenceSession.run on the same windows, "
            "already tokenized and padded (the floor under the runtime's own work), measured round robin.\n")
    return head + cols + "|" + "---|" * 19 + "\n" + rows + note


def ratios_markdown(records: list[dict[str, Any]]) -> str:
    """Our classify() p50 over each reference pipeline's, per bundle, thread count and length (ONNX artifacts
    only: the references run fp32 PyTorch and fp32 ONNX)."""
    ok = [r for r in records if "error" not in r]
    refs = {(r["config"]["bundle"], r["config"]["threads"], r["config"]["tokens"], r["config"]["reference"]): r
            for r in ok if r["config"].get("reference")}
    if not refs:
        return ""
    rows = ""
    for r in ok:
        c = r["config"]
        if c.get("reference") or r["backend"] != "onnxruntime":
            continue
        cells = []
        for name in ("transformers", "optimum"):
            ref = refs.get((c["bundle"], c["threads"], c["tokens"], name))
            cells.append(f"{ref['latency']['p50_ms'] / r['latency']['p50_ms']:.2f}×" if ref else "–")
        if any(cell != "–" for cell in cells):
            rows += (f"| {Path(c['bundle']).name} | `{r['artifact']['path']}` | {threads_label(r)} | {c['tokens']} | "
                     f"{r['latency']['p50_ms']:.2f} | " + " | ".join(cells) + " |\n")
    return ("\nSpeed-up of our classify() over the references (their p50 / ours; above 1 is faster):\n\n"
            "| bundle | artifact | threads | tokens | our p50 ms | vs transformers pipeline | vs optimum pipeline |\n"
            "|---|---|---|---|---|---|---|\n" + rows)


def default_vs_best(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], float]]:
    """(the record of the runtime's default threads, the explicit thread count's record with the lowest p50,
    default p50 over that p50) for each bundle, backend, artifact, length and batch measured both ways."""
    ours = [r for r in records if "error" not in r and not r["config"].get("reference")]

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        c = r["config"]
        return c["bundle"], r["backend"], r["artifact"]["path"], c["tokens"], c["batch"]

    rows = []
    for r in ours:
        if r["config"]["threads"] is not None:
            continue
        explicit = [x for x in ours if x["config"]["threads"] is not None and key(x) == key(r)]
        if explicit:
            best = min(explicit, key=lambda x: x["latency"]["p50_ms"])
            rows.append((r, best, r["latency"]["p50_ms"] / best["latency"]["p50_ms"]))
    return rows


def defaults_markdown(records: list[dict[str, Any]]) -> str:
    rows = default_vs_best(records)
    if not rows:
        return ""
    body = "".join(
        f"| {Path(d['config']['bundle']).name} | `{d['artifact']['path']}` | {d['backend']} | "
        f"{d['config']['tokens']} | {threads_label(d)} | {d['latency']['p50_ms']:.2f} | {best['config']['threads']} | "
        f"{best['latency']['p50_ms']:.2f} | {ratio:.2f}× |\n" for d, best, ratio in rows)
    return ("\nDefault settings (threads unset: the runtime's choice) against the fastest thread count measured "
            "beside them (default p50 / best p50; 1.00× is the best measured):\n\n| bundle | artifact | backend | "
            "tokens | default threads | default p50 ms | best threads | best p50 ms | default / best |\n|"
            + "---|" * 9 + "\n" + body)


TARGETS = (("classify() over a bare onnxruntime session, at 128 tokens", 1.10, "at most"),
           ("transformers pipeline p50 over classify() p50", 3.0, "at least"),
           ("fp32 ONNX p50 over int8 ONNX p50", 1.8, "at least"),
           ("default settings p50 over the best thread count's p50", 1.10, "at most"))
DEFAULT_TARGET_TOKENS = (16, 128)  # the lengths the default is held to: a short prompt, and one full window


def target_rows(records: list[dict[str, Any]]) -> list[tuple[str, str, str, int, float, bool]]:
    """(target, bundle, threads, tokens, measured ratio, met) for each measurement a target speaks to."""
    ok = [r for r in records if "error" not in r]
    ours = [r for r in ok if r["backend"] == "onnxruntime"]

    def key(r: dict[str, Any]) -> tuple[str, int | None, int]:
        return r["config"]["bundle"], r["config"]["threads"], r["config"]["tokens"]

    rows = []
    (raw_name, raw_goal, _), (ref_name, ref_goal, _), (int8_name, int8_goal, _), (default_name, default_goal, _) = (
        TARGETS)
    for r in ours:
        b, _, t = key(r)
        n = threads_label(r)
        label = f"{Path(b).name} `{r['artifact']['path']}`"
        if t == 128 and r["over_raw_session"]:
            rows.append((raw_name, label, n, t, r["over_raw_session"], r["over_raw_session"] <= raw_goal))
        ref = next((x for x in ok if x["config"].get("reference") == "transformers" and key(x) == key(r)), None)
        if ref:
            ratio = ref["latency"]["p50_ms"] / r["latency"]["p50_ms"]
            rows.append((ref_name, label, n, t, ratio, ratio >= ref_goal))
        if r["config"]["precision"] == "int8":
            fp32 = next((x for x in ours if x["config"]["precision"] == "fp32" and key(x) == key(r)), None)
            if fp32:
                ratio = fp32["latency"]["p50_ms"] / r["latency"]["p50_ms"]
                rows.append((int8_name, Path(b).name, n, t, ratio, ratio >= int8_goal))
    for d, _, ratio in default_vs_best(records):
        if d["config"]["tokens"] in DEFAULT_TARGET_TOKENS:
            rows.append((default_name, f"{Path(d['config']['bundle']).name} `{d['artifact']['path']}`",
                         threads_label(d), d["config"]["tokens"], ratio, ratio <= default_goal))
    return rows


def targets_markdown(records: list[dict[str, Any]]) -> str:
    rows = target_rows(records)
    if not rows:
        return ""
    goals = {name: f"{how} {goal:g}×" for name, goal, how in TARGETS}
    body = "".join(f"| {name} | {label} | {n} | {t} | {ratio:.2f}× | {goals[name]} | {'yes' if met else '**no**'} |\n"
                   for name, label, n, t, ratio, met in rows)
    return ("\nTargets (measured side by side in this run):\n\n| ratio | bundle | threads | tokens | measured | "
            "target | met |\n|---|---|---|---|---|---|---|\n" + body)


def _gflop(value: float | None, scale: float = 1e9) -> str:
    return "–" if value is None else f"{value / scale:.2f}"


def quality_markdown(quality: list[dict[str, Any]]) -> str:
    """The quality of each artifact on labelled rows, beside its size and its distance from fp32."""
    def cell(value: Any, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    rows = "".join(
        f"| {Path(q['bundle']).name} | `{q['artifact']}` | {q['backend']} | {q['bytes'] / MB:.1f} | {q['rows']} | "
        f"{cell(q['f1'])} | {cell(q['auprc'])} | {cell(q['fpr'])} | {cell(q.get('agreement_with_fp32'), 4)} | "
        f"{cell(q.get('max_abs_diff_vs_fp32'), 4)} | {cell(q.get('f1_change_vs_fp32'), 4)} |\n" for q in quality)
    return ("\n| bundle | artifact | backend | file MB | rows | F1 | AUPRC | FPR | same decision as fp32 | "
            "max abs ΔP vs fp32 | ΔF1 vs fp32 |\n|" + "---|" * 11 + "\n" + rows)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_size_f1(quality: list[dict[str, Any]], path: Path) -> Path | None:
    """F1 against file size, a point per artifact (needs matplotlib; None without it)."""
    plt = _pyplot()
    if plt is None or not quality:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    for q in quality:
        ax.scatter(q["bytes"] / MB, q["f1"] or 0)
        ax.annotate(f"{Path(q['bundle']).name} {q['artifact']}", (q["bytes"] / MB, q["f1"] or 0), fontsize=7)
    ax.set(xlabel="file size (MB)", ylabel="F1 at the bundle's threshold", xscale="log", title="size against F1")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_latency(records: list[dict[str, Any]], path: Path) -> Path | None:
    """p50 latency against tokens, a line per bundle, artifact, backend and thread count (needs matplotlib,
    from guard-sdk[bench]; None without it)."""
    plt = _pyplot()
    if plt is None:
        return None
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if "error" in r:
            continue
        c = r["config"]
        key = f"{Path(c['bundle']).name} {r['artifact']['path']} {r['backend']} {threads_label(r)} threads"
        lines.setdefault(key, []).append((r["tokens_per_input"], r["latency"]["p50_ms"]))
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=key)
    ax.set(xlabel="tokens per input", ylabel="p50 latency (ms)", xscale="log", yscale="log",
           title="classify() latency, batch 1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def full_markdown(records: list[dict[str, Any]], machine: dict[str, Any],
                  quality: list[dict[str, Any]] | None = None) -> str:
    """Every table: latency and memory, the speed-ups over the references, the default threads against the
    best, the targets, the quality."""
    return (to_markdown(records, machine) + ratios_markdown(records) + defaults_markdown(records)
            + targets_markdown(records)
            + (quality_markdown(quality) if quality else ""))


def write(records: list[dict[str, Any]], machine: dict[str, Any], out: Path,
          quality: list[dict[str, Any]] | None = None) -> list[Path]:
    """results.json, RESULTS.md, latency.png and, with ``quality``, size_f1.png (plots where matplotlib is
    installed) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "RESULTS.md"]
    data = {"machine": machine, "records": records, "quality": quality or []}
    written[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    kept = marked_blocks(written[1].read_text(encoding="utf-8")) if written[1].is_file() else []
    written[1].write_text("\n\n".join([full_markdown(records, machine, quality).rstrip("\n"), *kept]) + "\n",
                          encoding="utf-8")
    plots = [plot_latency(records, out / "latency.png"), plot_size_f1(quality or [], out / "size_f1.png")]
    return written + [p for p in plots if p]
