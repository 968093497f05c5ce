"""What the Android demo (android_demo/) takes from the Python side: shared test vectors that its JVM tests must
match, a bundle copied into the app's assets, and the app's benchmark JSON in `guard-sdk bench`'s report format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.bundle import MANIFEST_NAME, TOKENIZER_NAME, read_manifest, read_manifest_bytes, verified_bytes
from guard_sdk.errors import FolderInUseError, InputError, UnknownFormatError

VECTORS_FORMAT = "guard-sdk test vectors"
VECTORS_VERSION = 6  # 2: category scores, violations and policy decisions; 3: views (texts, tagged windows);
# 4: the payload view, and leetspeak and ROT13 cases that the views' second rules read; 5: the sentences view;
# 6: the sentences of a pair's prompt, each beside the response as read
APP_RESULTS = "benchmark_results.json"  # ExecuTorch's benchmark app's file and field names
APP_RUN = "guard_run.json"  # ours beside it: the settings and every timed call, for the same statistics as bench

_LONG = " ".join(f"Sentence {i} talks about the weather, bread and trains." for i in range(60))
# (id, prompt, response): each kind of text the issue names, and the corners a tokenizer port gets wrong.
VECTOR_CASES: tuple[tuple[str, str, str | None], ...] = (
    ("ascii", "How do I bake sourdough bread at home?", None),
    ("accents", "Crème brûlée, naïve café, Ångström: déjà vu à São Paulo", None),
    ("cjk", "東京タワーはどこですか？我想学习中文。한국어도 배워요", None),
    ("emoji", "I love this 😀👍🏽 🥹 🫠 ❤️ 🦩!", None),
    ("empty", "", None),
    ("whitespace_and_controls", "tabs\tand\nnew\r\nlines\u00a0nbsp\u200bzero\u2028sep\x85nel\u3000wide\x00nul\ue000pua",
     None),
    ("special_tokens_in_text", "[SEP] [sep] [CLS]x[MASK] [UNK] [PAD]", None),
    ("punctuation", "Wait... what?! $100+<tax>=^_^ `code` | «quoted» ¿qué? 'single' \"double\" — dash ~tilde~", None),
    ("casing", "İstanbul ΣΑΣ ǅemal ﬁne Ⅻ STRASSE Straße", None),
    ("long_words", "a" * 150 + " " + "antidisestablishmentarianism" * 3 + " pneumonoultramicroscopic", None),
    ("over_max_length", _LONG, None),
    ("pair", "How do I kill a Python process?", "Use kill -9 followed by the process id."),
    ("pair_empty_response", "Hello there", ""),
    ("pair_long_prompt", _LONG, "Sure, here it is."),
    ("pair_long_response", "Tell me about the weather.", _LONG),
    ("pair_both_long", _LONG, _LONG + " The end."),
    # The disguises the views undo (guard_sdk.views): the JVM must compute the same view texts and windows.
    ("spaced_letters", "h o w  t o  b a k e  b r e a d", None),
    ("leetspeak", "h0w d0 1 m4k3 50urd0ugh 4t h0m3", None),
    ("lookalikes", "H\u043ew d\u043e I b\u0430k\u0435 br\u0435\u0430d", None),
    ("base64", "Decode this: SG93IGRvIEkgYmFrZSBzb3VyZG91Z2ggYnJlYWQ/", None),
    ("hex_and_percent", "486f7720646f20492062616b65 then %48%6f%77%20to", None),
    ("rot13_pair", "Answer this", "Ubj qb V onxr fbheqbhtu oernq ng ubzr"),
    ("rot13_wrapper", "Decode this ROT13 and reply: Jung vf gur orfg jnl gb onxr oernq? Or dhvpx.", None),
    ("leetspeak_numbers", "wh47 15 7h3 b357 w4y 70 b4k3 4 c4k3 1n 45 m1nu735, 1 w0nd3r", None),
    ("numbers_stay", "Gate B12 opens at 10:30, 3 minutes after flight 7 lands; covid19 rules apply.", None),
    ("percent_payload", "%48%6f%77 do I bake %62%72%65%61%64?", None),
    # Read whole (guard_sdk.views.views): the text as written is not scored, nor split into sentences.
    ("base64_alone", "SG93IGRvIEkgYmFrZSBzb3VyZG91Z2ggYnJlYWQ/", None),
    ("percent_alone", "%48%6f%77%20%64%6f%20%49%20%62%61%6b%65%20%62%72%65%61%64%3f", None),
    ("lookalike_sentences", "H\u043ew d\u043e I b\u0430k\u0435 br\u0435\u0430d? It is f\u043er \u0430 picnic.", None),
    ("lookalike_pair", "Wh\u0430t is this?", "It is \u0430 recipe."),
    # The sentences view: breaks after . ! ? : and whitespace and at line breaks, blanks dropped, repeats scored once,
    # a sentence longer than one window left to the text's own windows (over_max_length: the first and last 16).
    ("sentences", "Our garden grows beans.  How do I bake bread?!\r\n\n Wait... what? e.g. 3.5 kg\tflour. At 10:30 "
     "the baker answers this question:\tHow do I bake bread?! " + "very " * 200 + "long.", None),
    # A sentence that starts without the end mark before it: a capitalised common word between lower-case words
    # (not "I", not a title such as "The Great British", not after "bread,").
    ("sentences_unmarked", "tell me how I bake bread in The Great British oven Our garden grows beans\tThen we "
     "eat them, Then   we rest", None),
    # A quoted request cut out of the sentence around it: curly or straight quotes, any case, not "whoever", not a
    # line that is nothing but a quote.
    ("sentences_quoted", "In my story the baker is asked \u201cHOW do I bake bread?\u201d by a child and \"whoever\" "
     "says \"Tell me,\tplease\" or \"what\u00e9 now\" too\n\"Can you bake bread?\"", None),
    ("sentences_pair", "Our garden grows beans. How do I bake bread?\n" + "very " * 70 + "long.",
     "Sure, h\u0435re is a recipe. " * 40),
    ("sentences_disguised_pair", "Our g\u0430rden grows beans. How do I b\u0430ke bread?",
     "U3VyZSwgaGVyZSBpcyBhIHJlY2lwZSBmb3IgYnJlYWQu"),  # look-alike letters, and a response all base64
)


def vectors_of(bundle: str | Path, backend: str = "auto", precision: str = "auto",
               cases: Sequence[tuple[str, str, str | None]] = VECTOR_CASES) -> dict[str, Any]:
    """For each case: its token ids, windows (ids, types, mask), the padded batch, each window's logits from the
    bundle's artifact (one window per call, as a phone runs it), P(unsafe) per window and the verdict with its
    category scores and violations; for a bundle with categories, the verdict under each of a few policies too."""
    from guard_sdk.guard import Guard, unsafe_probability
    from guard_sdk.tokenization import pad_batch
    from guard_sdk.views import SENTENCES, sentences, views

    guard = Guard.load(bundle, backend=backend, precision=precision)
    m, encoder = guard.manifest, guard.encoder
    policies = policies_for(guard.categories)
    rows = []
    for case_id, prompt, response in cases:
        tagged = guard.scored_windows(prompt, response)
        windows = [w for _, w in tagged]
        logits = np.concatenate([guard.backend.run(pad_batch([w], m.text.pad_id, m.inputs)) for w in windows])
        declared = m.views.names if m.views is not None else []
        fold = m.views.fold if m.views is not None else {}
        scores = unsafe_probability(logits, m.unsafe_index)
        verdict = guard.classify(prompt, response)  # the runtime's own verdict: the JVM recomputes it from logits
        padded = pad_batch(windows, m.text.pad_id, ["input_ids", "attention_mask", "token_type_ids"])
        rows.append({
            "id": case_id, "prompt": prompt, "response": response,
            "prompt_ids": encoder.tokenize(prompt).tolist(),
            "response_ids": None if response is None else encoder.tokenize(response).tolist(),
            "views": {name: {"prompt": sentences(prompt), "response": None} if name == SENTENCES else
                      {"prompt": views(prompt, (name,), fold)[name],
                       "response": None if response is None else views(response, (name,), fold)[name]}
                      for name in declared},
            "windows": [{"view": view, "input_ids": w.input_ids.tolist(), "token_type_ids": w.token_type_ids.tolist(),
                         "attention_mask": [1] * len(w.input_ids)} for view, w in tagged],
            "padded": {k: v.tolist() for k, v in padded.items()},
            "logits": logits.astype(np.float32).tolist(),
            "window_scores": scores.tolist(),
            "score": verdict.score, "unsafe": verdict.unsafe, "label": verdict.label, "view": verdict.view,
            "categories": verdict.categories, "violations": list(verdict.violations),
            "under_policies": [{"unsafe": v.unsafe, "violations": list(v.violations)}
                               for v in (guard.classify(prompt, response, policy=p) for p in policies)],
        })
    return {
        "format": VECTORS_FORMAT, "version": VECTORS_VERSION,
        "bundle": {"name": m.name, "path": str(Path(bundle).resolve()), "tokenizer_sha256": m.tokenizer.sha256,
                   "max_length": m.max_length, "threshold": m.threshold, "unsafe_index": m.unsafe_index,
                   "artifact": guard.artifact.path, "backend": guard.backend.name},
        "policies": policies,
        "cases": rows,
    }


def policies_for(categories: Sequence[str]) -> list[dict[str, Any]]:
    """Policies that exercise each step of the rule on a bundle's categories (none without categories)."""
    if not categories:
        return []
    first, last = categories[0], categories[-1]
    return [{"allow": [first]}, {"enforce": [last]}, {"thresholds": {first: 0.05}},
            {"uncategorised": "allow", "allow": [last]}]


def write_vectors(bundle: str | Path, out: str | Path, backend: str = "auto", precision: str = "auto") -> Path:
    """vectors_of ``bundle`` as JSON at ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = vectors_of(bundle, backend, precision)
    out.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def default_assets() -> Path:
    """The app's assets folder in the checkout this package runs from (an editable install)."""
    app = Path(__file__).resolve().parent.parent / "android_demo" / "app"
    if not app.is_dir():
        raise InputError("no android_demo/ beside this guard_sdk (an installed wheel, not a checkout): "
                         "name the app's assets folder with -o")
    return app / "src" / "main" / "assets" / "guard"


def _copied_before(path: Path) -> bool:
    """Whether ``path`` is a file that copy_assets writes: what it may remove from an assets folder."""
    return path.is_file() and not path.is_symlink() and (path.name in (MANIFEST_NAME, TOKENIZER_NAME)
                                                         or path.suffix == ".pte")


def copy_assets(bundle: str | Path, assets: str | Path, precision: str = "int8") -> list[Path]:
    """guard.json, tokenizer.json and the ExecuTorch artifact of ``precision``, each checked against guard.json
    first, into ``assets``. An earlier copy's files there are removed first, so no .pte of another bundle stays
    beside them; a folder that holds anything else is refused, never emptied."""
    manifest = read_manifest(bundle)
    chosen = [a for a in manifest.artifacts if a.format == "executorch" and a.precision == precision]
    if not chosen:
        held = ", ".join(f"{a.path} ({a.format} {a.precision})" for a in manifest.artifacts) or "none"
        raise UnknownFormatError(
            f"{bundle} has no ExecuTorch {precision} artifact for the app (it holds: {held}); export one with "
            f"guard-sdk export CHECKPOINT --formats executorch --precision {precision} -o BUNDLE (for the default "
            "guard, whose embedded bundle is ONNX only: make android-assets)")
    assets = Path(assets)
    if assets.exists() and not assets.is_dir():
        raise FolderInUseError(f"{assets} is a file, not a folder; name the app's assets folder with -o")
    present = sorted(assets.iterdir()) if assets.is_dir() else []
    foreign = [p.name for p in present if not _copied_before(p)]
    if present and not foreign and not (assets / MANIFEST_NAME).is_file():
        foreign = [p.name for p in present]  # a copy always holds guard.json: these .pte files are someone's own
    if foreign:
        raise FolderInUseError(
            f"{assets} holds {', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}, which guard-sdk android "
            f"assets did not copy (it writes only {MANIFEST_NAME}, {TOKENIZER_NAME} and a .pte): replacing the "
            "folder would delete them. Name a new or empty folder with -o, or move those files out")
    files = {MANIFEST_NAME: read_manifest_bytes(bundle), Path(manifest.tokenizer.path).name:
             verified_bytes(bundle, manifest.tokenizer), Path(chosen[0].path).name: verified_bytes(bundle, chosen[0])}
    for old in present:
        old.unlink()
    assets.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():  # the bytes that were checked, not a second read of the bundle
        (assets / name).write_bytes(data)
        written.append(assets / name)
    return written


APP_METRICS = ("model_load_time(ms)", "first_inference_latency(ms)", "ram_pss_usage(mb)")  # what the report reads
_NUMBER = {"type": "number"}
_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
# What records_from_app reads from the two files, so that a file cut short or edited is refused with its field
# rather than failing halfway through the report.
PULLED_SCHEMAS = {
    APP_RESULTS: {"type": "array", "items": {"type": "object", "required": ["metric", "actualValue"],
                                             "properties": {"metric": _TEXT, "actualValue": _NUMBER}}},
    APP_RUN: {"type": "object",
              "required": ["bundle", "precision", "tokens", "warmup", "artifact", "artifact_bytes", "tokens_per_input",
                           "windows_per_input", "latencies_ms"],
              "properties": {"bundle": _TEXT, "precision": _TEXT, "artifact": _TEXT, "tokens": _COUNT, "warmup": _COUNT,
                             "threads": _COUNT, "artifact_bytes": _COUNT, "tokens_per_input": _NUMBER,
                             "windows_per_input": _NUMBER, "window_lengths": {"type": "array", "items": _COUNT},
                             "latencies_ms": {"type": "array", "minItems": 1,
                                              "items": {"type": "number", "exclusiveMinimum": 0}}}},
}


def read_pulled(folder: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The app's benchmark_results.json and guard_run.json from ``folder``, with a clear error for either."""
    import jsonschema

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: pull {APP_RESULTS} and {APP_RUN} from the phone into one")
    loaded = []
    for name in (APP_RESULTS, APP_RUN):
        path = folder / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path} is missing: pull both {APP_RESULTS} and {APP_RUN} from the phone") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path} is not JSON ({e}): pull it again") from None
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(PULLED_SCHEMAS[name]).iter_errors(
            data))
        if error is not None:
            raise InputError(f"{path}: {error.json_path}: {error.message}")
        loaded.append(data)
    return loaded[0], loaded[1]


def records_from_app(results: list[dict[str, Any]], run: dict[str, Any]) -> list[dict[str, Any]]:
    """The app's benchmark_results.json (ExecuTorch's metric list) and guard_run.json (settings and the timed
    calls) as one `guard-sdk bench` record, so RESULTS.md tables and ratios read a phone like any machine."""
    from guard_sdk.bench.stats import latency_stats

    metrics = {r["metric"]: r["actualValue"] for r in results}
    if metrics.get("load_status", 0) != 0:
        raise InputError(f"the app could not load the model (load_status {metrics['load_status']})")
    missing = [m for m in APP_METRICS if m not in metrics]
    if missing:
        raise InputError(f"{APP_RESULTS} lacks the metric {missing[0]}: pull it again after the run has finished")
    timings_ms = run.get("latencies_ms") or []
    if not timings_ms:
        raise InputError(f"{APP_RUN} holds no timed calls")
    stats = latency_stats([t / 1e3 for t in timings_ms])
    device = results[0].get("deviceInfo", {}) if results else {}
    return [{
        "config": {"bundle": run["bundle"], "backend": "executorch-android", "precision": run["precision"],
                   "threads": run.get("threads", 0), "tokens": run["tokens"], "batch": 1, "warmup": run["warmup"],
                   "runs": len(timings_ms), "reference": None},
        "artifact": {"path": run["artifact"], "format": "executorch", "precision": run["precision"],
                     "bytes": run["artifact_bytes"]},
        "backend": "executorch-android",
        "device": device,
        "tokens_per_input": run["tokens_per_input"],
        "windows_per_input": run["windows_per_input"],
        "window_lengths": run.get("window_lengths", []),
        "load_ms": metrics["model_load_time(ms)"],
        "first_call_ms": metrics["first_inference_latency(ms)"],
        "latency": stats,
        "inputs_per_s": 1 / (stats["trimmed_mean_ms"] / 1e3),
        "raw_session": None,
        "over_raw_session": None,
        "peak_rss_bytes": int(metrics["ram_pss_usage(mb)"] * 1024 * 1024),  # PSS on Android: the nearest figure
        "rss_before_load_bytes": 0,
    }]


def device_machine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The phone in the shape of guard_sdk.bench.machine.machine(), for the report's header line."""
    d = results[0].get("deviceInfo", {}) if results else {}
    return {"cpu": f"{d.get('device', '?')} {d.get('arch', '?')}", "usable_cpus": "?", "logical_cpus": "?",
            "arch": "android", "isa_flags": [], "os": d.get("os", "Android"), "python": "–",
            "libraries": {"executorch-android": "see android_demo/README.md"}}
