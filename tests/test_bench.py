"""The benchmark's code on a tiny bundle: statistics on known samples, inputs of the asked length, complete
records measured in child processes, the report's files. No timing is asserted."""

import io
import json

import numpy as np
import pytest

from guard_sdk import Guard
from guard_sdk.bench import report, run
from guard_sdk.bench.inputs import text_of_tokens
from guard_sdk.bench.machine import machine
from guard_sdk.bench.stats import latency_stats, trimmed_mean
from guard_sdk.bench.worker import Config, measure
from guard_sdk.cli import main
from guard_sdk.cli.main import build_parser
from guard_sdk.errors import InputError

from .test_guard import STUDENT_PARAMETERS, with_parameters


def test_statistics_on_known_samples():
    s = latency_stats([i / 1000 for i in range(1, 101)])  # 1 ms ... 100 ms
    assert s["n"] == 100 and s["min_ms"] == pytest.approx(1) and s["max_ms"] == pytest.approx(100)
    assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["mean_ms"] == pytest.approx(50.5)
    assert s["trimmed_mean_ms"] == pytest.approx(np.mean(range(11, 91)))  # 10 dropped at each end
    assert trimmed_mean([1, 1, 1, 1, 1, 1, 1, 1, 1, 1000]) == 1  # one slow outlier does not move it
    with pytest.raises(ValueError, match="no timings"):
        latency_stats([])


@pytest.mark.parametrize("tokens", [16, 40, 64, 150])
def test_inputs_hold_the_tokens_asked_for_across_their_windows(bert_bundle, tokens):
    encoder = Guard.load(bert_bundle).encoder
    windows = encoder.windows(text_of_tokens(encoder, tokens))
    total = sum(len(w.input_ids) for w in windows)
    # A filler word may be two tokens in the tiny vocabulary, and a word that opens a window brings its specials.
    assert tokens <= total <= tokens + 4
    assert len(windows) == (1 if tokens <= encoder.max_length else len(windows)) and (len(windows) > 1) == (
        tokens > encoder.max_length)


def test_the_machine_record_names_cpu_cores_flags_and_versions():
    m = machine()
    assert m["cpu"] and m["logical_cpus"] >= 1 and 1 <= m["usable_cpus"] <= m["logical_cpus"]
    assert {"guard-sdk", "numpy", "onnxruntime", "tokenizers"} <= set(m["libraries"])
    assert all(isinstance(f, str) for f in m["isa_flags"])


def test_plan_covers_each_runnable_artifact_thread_count_and_length(bert_bundle):
    configs = run.plan([bert_bundle], lengths=(16, 64), threads=(1, 2), runs=3, warmup=1)
    artifacts = Guard.load(bert_bundle).manifest.artifacts
    assert len(configs) == len(artifacts) * 2 * 2
    assert {(c.precision, c.threads, c.tokens) for c in configs} == {
        (a.precision, n, t) for a in artifacts for n in (1, 2) for t in (16, 64)}
    assert {c.backend for c in configs} == {"onnxruntime"}
    assert len(run.plan([bert_bundle], precisions=["int8"], lengths=(16,), threads=(1,))) == 1
    with pytest.raises(InputError, match="unknown backend.s. tflite"):
        run.plan([bert_bundle], backends=["tflite"])
    with pytest.raises(InputError, match="nothing to measure"):
        run.plan([bert_bundle], precisions=["int4"])


def test_the_default_plan_measures_threads_unset_beside_the_explicit_counts(bert_bundle, tiny_bert):
    assert [c.threads for c in run.plan([bert_bundle], precisions=["int8"], lengths=(16,))] == [None, 1, 2]
    assert build_parser().parse_args(["bench"]).threads == (None, 1, 2)
    assert build_parser().parse_args(["bench", "--threads", "default,4"]).threads == (None, 4)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--threads", "0,default"])
    # The references have no runtime default of ours: they run at the explicit counts only.
    assert [c.threads for c in run.plan_references(bert_bundle, tiny_bert, lengths=(16,))] == [1, 2, 1, 2]


def test_the_worker_loads_with_threads_unset_and_records_the_runtimes_choice(bundle_copy, monkeypatch):
    config = Config(str(bundle_copy), "onnxruntime", "int8", None, 16, 1, 1, 2)
    record = run.measure_in_child(config)  # None goes to the child as JSON null and back
    assert record["config"]["threads"] is None and record["threads_used"] == 1
    assert report.threads_label(record) == "default (1)"
    with_parameters(bundle_copy, STUDENT_PARAMETERS)
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 2)
    record = measure(config)
    assert record["threads_used"] == 2 and record["raw_session"]["n"] == 2  # the floor at the same count


def test_a_configuration_measured_in_its_own_process_gives_a_complete_record(bert_bundle):
    config = Config(str(bert_bundle), "onnxruntime", "int8", 1, 64, 2, 1, 5)
    record = run.measure_in_child(config)
    assert record["config"] == config.__dict__ and record["backend"] == "onnxruntime"
    assert record["artifact"]["precision"] == "int8" and record["artifact"]["bytes"] > 0
    assert 64 <= record["tokens_per_input"] <= 66 and record["windows_per_input"] == 1
    assert record["latency"]["n"] == 5 and record["load_ms"] > 0 and record["first_call_ms"] > 0
    assert record["inputs_per_s"] == pytest.approx(2 / (record["latency"]["trimmed_mean_ms"] / 1e3))
    assert record["raw_session"]["n"] == 5  # the onnxruntime floor, timed round robin with classify()
    assert record["over_raw_session"] == pytest.approx(record["latency"]["p50_ms"] / record["raw_session"]["p50_ms"])
    # The child's own peak: onnxruntime and the model were loaded there, on top of a bare interpreter.
    assert record["peak_rss_bytes"] > record["rss_before_load_bytes"] > 0
    in_process = measure(config)
    assert in_process.keys() == record.keys()


def test_a_failing_configuration_is_recorded_not_fatal(tmp_path):
    record = run.measure_in_child(Config(str(tmp_path / "missing"), "onnxruntime", "int8", 1, 16, 1, 1, 1))
    assert "missing" in record["error"] and record["config"]["tokens"] == 16


def test_cli_writes_json_markdown_and_a_plot(bert_bundle, tmp_path):
    pytest.importorskip("matplotlib")
    kept = ("## Serving under load\n\n<!-- guard-sdk bench --serve: BEGIN -->\n| load |\n"
            "<!-- guard-sdk bench --serve: END -->")
    evasion = ("<!-- guard-sdk eval --suite evasion: BEGIN -->\n| evasion |\n"
               "<!-- guard-sdk eval --suite evasion: END -->")
    (tmp_path / "RESULTS.md").write_text(f"old table\n\n{kept}\n\nold words\n{evasion}\n")
    out = io.StringIO()
    code = main(["bench", "-b", str(bert_bundle), "--precisions", "int8", "--tokens", "16,64", "--threads", "1",
                 "--runs", "3", "--warmup", "1", "--out", str(tmp_path), "-q"], out=out)
    assert code == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["records"]) == 2 and saved["machine"]["cpu"]
    assert [r["config"]["tokens"] for r in saved["records"]] == [16, 64]
    short, long = saved["records"]
    assert 0 < short["flops_per_call"] < long["flops_per_call"] and short["gflops_per_s"] > 0
    table = (tmp_path / "RESULTS.md").read_text()
    assert table.startswith("Machine: ") and table.count("| tiny-bert-guard | `model.int8.onnx` |") == 2
    assert table.endswith(f"\n\n{kept}\n\n{evasion}\n") and "old " not in table  # the other commands' blocks stay
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.getvalue().startswith("Machine: ") and f"wrote {tmp_path / 'latency.png'}" in out.getvalue()


def test_report_marks_a_failed_configuration():
    failed = {"config": {"bundle": "b", "backend": "executorch", "precision": "int4", "threads": 1, "tokens": 16,
                         "batch": 1}, "error": "no executorch"}
    table = report.to_markdown([failed], machine())
    assert "| b | int4 | executorch | 1 | 16 | – | 1 | failed: no executorch |" + " – |" * 11 in table


def test_quality_per_artifact_against_fp32_and_the_size_f1_plot(bert_bundle, tmp_path):
    pytest.importorskip("matplotlib")
    from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": t, "label": int(t in UNSAFE_TEXTS)}) + "\n"
                            for t in UNSAFE_TEXTS + SAFE_TEXTS))
    out = io.StringIO()
    assert main(["bench", "-b", str(bert_bundle), "--tokens", "16", "--threads", "1", "--runs", "2", "--warmup", "1",
                 "--data", str(rows), "--quality-rows", "20", "--out", str(tmp_path / "b"), "-q"], out=out) == 0
    quality = {q["precision"]: q for q in json.loads((tmp_path / "b" / "results.json").read_text())["quality"]}
    assert set(quality) == {"fp32", "int8"} and all(q["rows"] == 20 for q in quality.values())
    fp32, int8 = quality["fp32"], quality["int8"]
    assert fp32["agreement_with_fp32"] == 1.0 and fp32["max_abs_diff_vs_fp32"] == 0.0
    assert fp32["f1_change_vs_fp32"] == 0.0 and int8["f1_change_vs_fp32"] == pytest.approx(int8["f1"] - fp32["f1"])
    assert 0.0 <= int8["agreement_with_fp32"] <= 1.0 and int8["bytes"] < fp32["bytes"]
    assert "| ΔF1 vs fp32 |" in out.getvalue()
    assert (tmp_path / "b" / "size_f1.png").read_bytes()[:4] == b"\x89PNG"


def test_flops_are_counted_on_the_graph_as_an_encoder_does_them(bert_bundle):
    from guard_sdk.bench.flops import input_flops, matmul_flops, onnx_graph_of

    d, ff, layers = 32, 64, 2  # the tiny BERT of conftest.py

    def expected(n):  # Q, K, V, O and the feed-forward per token; QKᵀ and AV per token pair; pooler and head
        return layers * (8 * n * d * d + 4 * n * d * ff + 4 * n * n * d) + 2 * d * d + 2 * d * 2

    graph = onnx_graph_of(bert_bundle)
    assert graph.name == "model.int8.onnx"  # the smallest: every artifact is the same model
    fp32 = str(bert_bundle / "model.onnx")
    assert matmul_flops(fp32, 16) == expected(16) and matmul_flops(fp32, 64) == expected(64)
    assert matmul_flops(str(graph), 16) == expected(16)  # quantized products count the same
    assert input_flops(bert_bundle, [16, 64], batch=2) == 2 * (expected(16) + expected(64))


@pytest.mark.slow
def test_references_run_the_same_text_and_give_our_speed_up(bert_bundle, tiny_bert, tmp_path):
    import shutil

    assert run.source_checkpoint(bert_bundle) == tiny_bert  # the default: what the bundle was exported from
    moved = shutil.copytree(bert_bundle, tmp_path / "moved")
    manifest = json.loads((moved / "guard.json").read_text())
    manifest["source"]["checkpoint"] = str(tmp_path / "gone")
    (moved / "guard.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="source checkpoint is not on this machine; name one with --checkpoint"):
        run.plan_references(moved, None)
    configs = run.plan_references(bert_bundle, tiny_bert, lengths=(16, 500), threads=(1,), warmup=1, runs=3)
    assert [(c.reference, c.tokens) for c in configs] == [("transformers", 16), ("optimum", 16)]  # 500 > 1 window
    ours = run.plan([bert_bundle], precisions=["fp32"], lengths=(16,), threads=(1,), warmup=1, runs=3)
    records = run.run(ours + configs, progress=False)
    assert all("error" not in r for r in records), [r.get("error") for r in records]
    ref = {r["config"]["reference"]: r for r in records[1:]}
    assert ref["transformers"]["backend"] == "transformers pipeline" and ref["optimum"]["backend"] == "optimum pipeline"
    assert 16 <= ref["transformers"]["tokens_per_input"] <= 18 and ref["optimum"]["latency"]["n"] == 3
    table = report.ratios_markdown(records)
    row = next(line for line in table.splitlines() if line.startswith("| tiny-bert-guard"))
    ratios = [float(cell.strip().rstrip("×")) for cell in row.split("|")[6:8]]
    p50 = records[0]["latency"]["p50_ms"]
    assert ratios == pytest.approx([ref[n]["latency"]["p50_ms"] / p50 for n in ("transformers", "optimum")], rel=0.01)


def test_the_pytest_benchmark_suite_collects_every_case_and_runs(bert_bundle, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "pytest", str(root / "benchmarks"), "--bench-bundle", str(bert_bundle), "-q",
               "--benchmark-disable", "-p", "no:cacheprovider", "-k", "batch_1 and 16 or batch_8"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
    # 2 artifacts (fp32, int8) x 3 thread settings (default, 1, 2) at 16 tokens, and the same at batch 8
    assert "12 passed" in done.stdout.splitlines()[-1]


def _record(bundle, precision, p50, tokens=128, threads=1, raw=None, reference=None, used=None):
    return {"config": {"bundle": bundle, "precision": precision, "threads": threads, "tokens": tokens, "batch": 1,
                       "reference": reference},
            "backend": f"{reference} pipeline" if reference else "onnxruntime", "threads_used": used or threads,
            "artifact": {"path": f"model.{precision}.onnx"}, "latency": {"p50_ms": p50},
            "over_raw_session": None if reference else p50 / (raw or p50)}


def test_targets_are_ratios_of_measurements_taken_side_by_side():
    records = [_record("b/student", "fp32", 100.0, raw=95.0), _record("b/student", "int8", 50.0, raw=40.0),
               _record("b/student", "fp32", 400.0, reference="transformers"),
               _record("b/student", "int8", 20.0, tokens=16)]  # no fp32 at 16 tokens: no int8 ratio there
    rows = {(name.split()[0], label, t): (round(ratio, 3), met) for name, label, _, t, ratio, met in
            report.target_rows(records)}
    assert rows == {
        ("classify()", "student `model.fp32.onnx`", 128): (round(100 / 95, 3), True),
        ("classify()", "student `model.int8.onnx`", 128): (1.25, False),
        ("transformers", "student `model.fp32.onnx`", 128): (4.0, True),
        ("transformers", "student `model.int8.onnx`", 128): (8.0, True),
        ("fp32", "student", 128): (2.0, True),
    }
    table = report.targets_markdown(records)
    assert "| 1.25× | at most 1.1× | **no** |" in table and "| 2.00× | at least 1.8× | yes |" in table


def test_the_report_sets_the_default_threads_against_the_fastest_explicit_count():
    records = [_record("b/default", "int8", 3.0, tokens=16, threads=None, used=1),
               _record("b/default", "int8", 2.9, tokens=16, threads=1),
               _record("b/default", "int8", 7.2, tokens=16, threads=2),
               _record("b/default", "fp32", 2.0, tokens=16, threads=1),  # another artifact: not int8's best
               _record("b/default", "int8", 15.0, tokens=128, threads=None, used=1),
               _record("b/default", "int8", 15.5, tokens=128, threads=1),
               _record("b/default", "int8", 26.5, tokens=128, threads=2),
               _record("b/student", "int8", 300.0, tokens=128, threads=None, used=2),
               _record("b/student", "int8", 360.0, tokens=128, threads=1),
               _record("b/student", "int8", 243.0, tokens=128, threads=2),
               _record("b/student", "int8", 100.0, tokens=128, threads=2, reference="transformers"),  # not ours
               _record("b/default", "int8", 55.0, tokens=512, threads=None, used=1)]  # nothing explicit beside it
    rows = [(d["config"]["bundle"], d["config"]["tokens"], best["config"]["threads"], ratio)
            for d, best, ratio in report.default_vs_best(records)]
    assert rows == [("b/default", 16, 1, pytest.approx(3.0 / 2.9)), ("b/default", 128, 1, pytest.approx(15 / 15.5)),
                    ("b/student", 128, 2, pytest.approx(300 / 243))]
    table = report.defaults_markdown(records)
    assert "| default | `model.int8.onnx` | onnxruntime | 16 | default (1) | 3.00 | 1 | 2.90 | 1.03× |" in table
    assert "| student | `model.int8.onnx` | onnxruntime | 128 | default (2) | 300.00 | 2 | 243.00 | 1.23× |" in table
    targets = {(label, t): (n, ratio, met) for name, label, n, t, ratio, met in report.target_rows(records)
               if name.startswith("default settings")}
    assert targets == {("default `model.int8.onnx`", 16): ("default (1)", pytest.approx(3.0 / 2.9), True),
                       ("default `model.int8.onnx`", 128): ("default (1)", pytest.approx(15 / 15.5), True),
                       ("student `model.int8.onnx`", 128): ("default (2)", pytest.approx(300 / 243), False)}
    assert "| default (2) | 128 | 1.23× | at most 1.1× | **no** |" in report.targets_markdown(records)
    assert report.defaults_markdown(records[1:4]) == ""  # no default measured: no table
