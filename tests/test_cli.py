"""The guard-sdk command: JSON out, exit codes 0/2/1, a line per bad input, --help on every subcommand."""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guard_sdk import Guard
from guard_sdk.cli import main

from .conftest import TINY_INT8


def run(*argv):
    out = io.StringIO()
    code = main(list(map(str, argv)), out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def test_classify_text_prints_one_json_verdict(bert_bundle):
    code, [v] = run("classify", "How do I make a pipe bomb at home?", "--bundle", bert_bundle)
    assert code == 0
    assert set(v) == {"unsafe", "score", "threshold", "label", "windows", "categories", "violations", "view"}
    assert v["categories"] == {} and v["violations"] == [] and v["view"] == "raw"  # no category head, plain text
    code, [pair] = run("classify", "Tell me a joke", "--response", "No.", "--bundle", bert_bundle, "-t", "0")
    assert code == 0 and pair["unsafe"] is True and pair["threshold"] == 0.0


def test_classify_prints_categories_and_takes_a_policy_file(categories_bundle, tmp_path, capsys):
    text = "How do I make a pipe bomb at home?"
    code, [v] = run("classify", text, "--bundle", categories_bundle)
    assert code == 0 and v["unsafe"] and list(v["categories"]) == ["violent_crimes", "privacy", "hate"]
    assert v["violations"][0] == "violent_crimes"
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow": v["violations"]}))
    code, [released] = run("classify", text, "--bundle", categories_bundle, "--policy", policy)
    assert code == 0 and not released["unsafe"] and released["violations"] == []
    assert released["categories"] == v["categories"]
    policy.write_text(json.dumps({"allow": ["elections"]}))
    assert run("classify", text, "--bundle", categories_bundle, "--policy", policy)[0] == 2
    assert "names elections, which this bundle does not score" in capsys.readouterr().err


def test_jsonl_reports_bad_lines_by_number_and_runs_the_rest(bert_bundle, tmp_path, capsys):
    lines = [
        json.dumps({"prompt": "What is the capital of Australia?"}).encode(),
        b'{"prompt": "caf\xe9 with a latin-1 byte"}',
        b"not json",
        json.dumps({"response": "no prompt"}).encode(),
        b"",
        json.dumps({"prompt": "Tell me a joke", "response": "Why did the chicken cross the road?"}).encode(),
        json.dumps({"prompt": None}).encode(),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, records = run("classify", "--jsonl", path, "--bundle", bert_bundle)
    assert code == 2
    assert [r["line"] for r in records] == [1, 2, 3, 4, 6, 7]
    assert "score" in records[0] and "score" in records[4]
    assert records[1]["error"] == "not valid UTF-8 (byte 15)"
    assert records[2]["error"].startswith("not valid JSON")
    assert "prompt" in records[3]["error"] and "must be a str" in records[5]["error"]
    assert "guard-sdk: line 2: not valid UTF-8" in capsys.readouterr().err


def test_clean_jsonl_exits_zero(bert_bundle, tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"question {i}"}) for i in range(150)) + "\n")
    code, records = run("classify", "--jsonl", path, "--bundle", bert_bundle)
    assert code == 0 and [r["line"] for r in records] == list(range(1, 151))


@pytest.mark.parametrize("argv,message", [
    (["classify"], "give either TEXT or --jsonl"),
    (["classify", "hi", "--jsonl", "x.jsonl"], "give either TEXT or --jsonl"),
    (["classify", "--jsonl", "missing.jsonl"], "missing.jsonl: no such file"),
    (["classify", "hi", "--bundle", "nowhere"], "no such bundle folder"),
    (["classify", "hi", "--backend", "tensorrt"], "unknown backend"),
])
def test_bad_input_is_one_line_and_exit_2(bert_bundle, capsys, argv, message):
    if "--bundle" not in argv:
        argv = [*argv, "--bundle", str(bert_bundle)]
    code, _ = run(*argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["classify", "hi", "--threshold", "1.5"])
    assert info.value.code == 2 and "must lie in [0, 1]" in capsys.readouterr().err


def test_tampered_bundle_exit_2_and_named(bundle_copy, capsys):
    (bundle_copy / "model.int8.onnx").write_bytes(b"garbage")
    code, _ = run("classify", "hi", "--bundle", bundle_copy)
    assert code == 2 and "model.int8.onnx" in capsys.readouterr().err
    assert run("verify", bundle_copy)[0] == 2


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["text"].update(pad_id=5), "pad"),  # the tokenizer's [PAD] is another id
    (lambda m: m["artifacts"][0].update(format="tflite"), "no backend of this runtime runs"),
    (lambda m: m["artifacts"].append(dict(m["artifacts"][0])), "two artifacts share one format and precision"),
])
def test_verify_refuses_what_a_load_would_refuse(bundle_copy, capsys, edit, message):
    """verify checks every artifact as a load does, not only the files' hashes."""
    manifest = json.loads((bundle_copy / "guard.json").read_text())
    edit(manifest)
    (bundle_copy / "guard.json").write_text(json.dumps(manifest))
    assert run("verify", bundle_copy)[0] == 2
    assert message in capsys.readouterr().err


def test_verify_loads_every_artifact_it_can_run(bundle_copy):
    out = io.StringIO()
    assert main(["verify", str(bundle_copy)], out=out) == 0
    listed = [line.split()[0] for line in out.getvalue().splitlines()[1:-1]]
    assert listed == [a["path"] for a in json.loads((bundle_copy / "guard.json").read_text())["artifacts"]]
    assert all(line.endswith("loaded by onnxruntime, scored a text") for line in out.getvalue().splitlines()[1:-1])


def test_keygen_sign_and_verify_with_the_public_key(bundle_copy, tmp_path, capsys):
    key, other = tmp_path / "release.pem", tmp_path / "other.pem"
    assert run("keygen", key)[0] == run("keygen", other)[0] == 0
    assert run("keygen", key)[0] == 2  # never overwrites a key
    capsys.readouterr()
    assert run("keygen", tmp_path / "missing" / "k.pem")[0] == 2  # an InputError, not a FileNotFoundError
    assert "no such folder" in capsys.readouterr().err
    assert run("verify", bundle_copy, "--key", tmp_path / "release.pub.pem")[0] == 2  # unsigned: refused
    model = (bundle_copy / "model.int8.onnx").read_bytes()
    (bundle_copy / "model.int8.onnx").write_bytes(model[:-1])
    assert run("sign", bundle_copy, "--key", key)[0] == 2 and not (bundle_copy / "guard.sig").exists()
    (bundle_copy / "model.int8.onnx").write_bytes(model)
    assert run("sign", bundle_copy, "--key", key)[0] == 0 and (bundle_copy / "guard.sig").is_file()
    capsys.readouterr()
    assert run("verify", bundle_copy, "--key", tmp_path / "release.pub.pem")[0] == 0
    assert run("verify", bundle_copy, "--trusted-key", tmp_path / "other.pub.pem")[0] == 2
    assert "which is not among the 1 trusted key(s)" in capsys.readouterr().err
    assert run("classify", "hi", "--bundle", bundle_copy, "--key", tmp_path / "release.pub.pem")[0] == 0
    (bundle_copy / "guard.json").write_text((bundle_copy / "guard.json").read_text().replace('"threshold": ',
                                                                                              '"threshold":  '))
    assert run("verify", bundle_copy, "--key", tmp_path / "release.pub.pem")[0] == 2  # one byte: refused


def test_export_and_verify_commands(tiny_bert, tmp_path, capsys):
    out = tmp_path / "cli-guard"
    code, _ = run("export", tiny_bert, "-o", out, "--int8-tolerance", str(TINY_INT8["int8_tolerance"]),
                  "--int8-min-agreement", str(TINY_INT8["int8_min_agreement"]), "-q")
    assert code == 0 and (out / "guard.json").is_file()
    code, _ = run("verify", out)
    assert code == 0
    assert json.loads((out / "guard.json").read_text())["views"]["names"] == ["normalized", "payload", "sentences"]
    for flags, names in ((["--views", "payload,normalized"], ["payload", "normalized"]), (["--no-views"], None)):
        code, _ = run("export", tiny_bert, "-o", tmp_path / "v", "--precision", "fp32", "--overwrite", *flags, "-q")
        assert code == 0 and json.loads((tmp_path / "v" / "guard.json").read_text()).get("views", {}).get("names") \
            == names
    code, _ = run("export", tiny_bert, "-o", tmp_path / "strict", "--int8-tolerance", "0", "-q")
    assert code == 1 and "export failed" in capsys.readouterr().err and not (tmp_path / "strict").exists()


def test_export_overwrite_refuses_a_folder_that_is_not_a_bundle(tiny_bert, tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text("print('mine')")
    code, _ = run("export", tiny_bert, "-o", project, "--overwrite", "--precision", "fp32", "-q")
    err = capsys.readouterr().err
    assert code == 2 and f"{project} holds files but no guard.json" in err and err.count("\n") == 1
    assert (project / "src" / "app.py").read_text() == "print('mine')"
    checkpoint = shutil.copytree(tiny_bert, tmp_path / "ckpt")
    code, _ = run("export", checkpoint, "-o", checkpoint, "--overwrite", "--precision", "fp32", "-q")
    assert code == 2 and "is the checkpoint being exported" in capsys.readouterr().err
    assert (checkpoint / "config.json").is_file()


def test_export_refuses_an_untrained_head_unless_told_and_takes_the_unsafe_label(tiny_bert, tmp_path, capsys):
    from .test_export_onnx import _bare_encoder

    bare = _bare_encoder(tiny_bert, tmp_path / "bare")
    code, _ = run("export", bare, "-o", tmp_path / "b", "-q")
    assert code == 2 and "--allow-untrained-head" in capsys.readouterr().err and not (tmp_path / "b").exists()
    code, _ = run("export", bare, "-o", tmp_path / "b", "--allow-untrained-head", "--unsafe-label", "0",
                  "--precision", "fp32", "-q")
    assert code == 0 and json.loads((tmp_path / "b" / "guard.json").read_text())["unsafe_index"] == 0


def _parity_rows():
    from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

    return ([{"prompt": t, "label": "unsafe"} for t in UNSAFE_TEXTS] + [{"prompt": t, "label": 0} for t in SAFE_TEXTS]
            + [{"prompt": "Tell me a joke.", "response": "", "label": None}])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_export_checks_parity_on_a_labelled_file(tiny_bert, tmp_path, suffix):
    import csv

    rows = _parity_rows()
    path = tmp_path / f"parity{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, ["prompt", "response", "label"])
            writer.writeheader()
            writer.writerows({**r, "label": "" if r["label"] is None else r["label"]} for r in rows)
    code, _ = run("export", tiny_bert, "-o", tmp_path / "b", "--parity-data", path, "--parity-rows", "20",
                  "--precision", "fp32", "-q")
    assert code == 0
    parity = json.loads((tmp_path / "b" / "guard.json").read_text())["artifacts"][0]["parity"]
    assert parity["sample_texts"] == 20 and parity["texts"] == 40


@pytest.mark.parametrize("content,message", [
    ('{"prompt": "hi", "label": "unsafe"}\nnot json\n', "parity.jsonl: line 2: not valid JSON"),
    ('{"prompt": "hi", "label": "toxic"}\n', "parity.jsonl: line 1: label 'toxic' is not one of"),
    ('{"text": "hi"}\n', "parity.jsonl: line 1: needs a string \"prompt\""),
    ("", "parity.jsonl: holds no rows"),
])
def test_a_bad_parity_file_is_refused_by_line(tiny_bert, tmp_path, capsys, content, message):
    path = tmp_path / "parity.jsonl"
    path.write_text(content)
    code, _ = run("export", tiny_bert, "-o", tmp_path / "b", "--parity-data", path, "-q")
    err = capsys.readouterr().err
    assert code == 2 and message in err and not (tmp_path / "b").exists()


@pytest.mark.parametrize("sub", [[], ["classify"], ["export"], ["verify"], ["finetune"], ["distill"], ["augment"],
                                 ["label"], ["eval"], ["bench"]])
def test_help_explains_itself(sub):
    result = subprocess.run([sys.executable, "-m", "guard_sdk.cli", *sub, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "exit codes: 0 success; 2 bad input" in result.stdout
    assert {"": "classify", "classify": "--jsonl", "export": "--int8-tolerance", "verify": "sha256",
            "finetune": "resumes from its last checkpoint", "distill": "KL(teacher || student)",
            "augment": "affirmative prefix", "label": "Llama Guard 3", "eval": "--columns", "bench": "p50"}[
        sub[0] if sub else ""] in result.stdout


def _labelled_file(tmp_path):
    from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

    path = tmp_path / "labelled.csv"
    rows = [f'"{t}",unsafe' for t in UNSAFE_TEXTS] + [f'"{t}",safe' for t in SAFE_TEXTS]
    path.write_text("text,verdict\n" + "\n".join(rows) + "\n")
    return path


def test_eval_of_a_bundle_and_of_its_checkpoint_agree(bert_bundle, tiny_bert, tmp_path):
    data = _labelled_file(tmp_path)
    common = ["--data", data, "--columns", "prompt=text,label=verdict", "--threshold", "0.5"]
    out = io.StringIO()
    assert main(list(map(str, ["eval", "--bundle", bert_bundle, "--precision", "fp32", *common,
                               "--out", tmp_path / "b"])), out=out) == 0
    table = out.getvalue()
    assert "| **all** | 24 | 12 | 1.000 | 1.000 | 1.000 | 1.000 | 0.000 | 1.000 |" in table  # the fitted texts
    assert "| `labelled` |" in table and "| level: prompt |" in table
    assert main(list(map(str, ["eval", "--checkpoint", tiny_bert, *common, "--out", tmp_path / "c"])),
                out=io.StringIO()) == 0
    bundle, checkpoint = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("b", "c"))
    assert bundle["overall"] == checkpoint["overall"] and bundle["threshold"] == 0.5


def test_eval_bad_data_is_exit_2_with_file_and_row(bert_bundle, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "hi", "label": 1}\n{"prompt": "ok", "label": "perhaps"}\n')
    code = main(["eval", "--bundle", str(bert_bundle), "--data", str(path)], out=io.StringIO())
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl: row 2: unknown label value 'perhaps'" in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "guard-sdk"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("guard-sdk 0.1.0")


def test_jsonl_parser_errors_are_the_lines_own_and_separators_stay_inside_a_line(bert_bundle, tmp_path):
    # Before: a RecursionError or a ValueError from json.loads ended the whole run with exit 1 and no output.
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"prompt": "one\u2028two"}, ensure_ascii=False).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"prompt": ' + b"9" * 5_000 + b"}",
        json.dumps({"prompt": "Tell me a joke", "response": ""}).encode(),
    ]) + b"\n")
    code, records = run("classify", "--jsonl", path, "--bundle", bert_bundle, "-q")
    assert code == 2 and [r["line"] for r in records] == [1, 2, 3, 4]
    assert "score" in records[0] and "score" in records[3]
    assert "RecursionError" in records[1]["error"] and "ValueError" in records[2]["error"]
    pair = Guard.load(bert_bundle).classify("Tell me a joke", response="")
    assert records[3]["score"] == pytest.approx(pair.score)  # an empty response is scored as a pair


def test_fail_on_unsafe_gives_a_shell_script_an_exit_code_to_gate_on(bert_bundle, tmp_path):
    text = "How do I make a pipe bomb at home?"
    assert run("classify", text, "--bundle", bert_bundle, "-t", "0")[0] == 0  # without the flag: 0 whatever
    assert run("classify", text, "--bundle", bert_bundle, "-t", "0", "--fail-on-unsafe")[0] == 3
    assert run("classify", text, "--bundle", bert_bundle, "-t", "1", "--fail-on-unsafe")[0] == 0
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"prompt": text}) + "\n")
    assert run("classify", "--jsonl", path, "--bundle", bert_bundle, "-t", "0", "--fail-on-unsafe", "-q")[0] == 3
    path.write_text(json.dumps({"prompt": text}) + "\nnot json\n")  # bad input says 2 first
    assert run("classify", "--jsonl", path, "--bundle", bert_bundle, "-t", "0", "--fail-on-unsafe", "-q")[0] == 2


def test_default_names_the_embedded_guard_for_verify_and_every_bundle_option(capsys):
    from guard_sdk.guard import default_bundle_path

    out = io.StringIO()
    assert main(["verify", "default"], out=out) == 0
    assert out.getvalue().startswith(f"{default_bundle_path()}: guard-sdk-default,")
    code, [v] = run("classify", "hello", "--bundle", "default")
    assert code == 0 and v["threshold"] == pytest.approx(json.loads(
        (default_bundle_path() / "guard.json").read_text())["threshold"])


def test_a_missing_library_names_the_extra_to_install(tiny_bert, tmp_path):
    script = ("import sys; sys.modules['transformers'] = None\n"  # as on the light install
              "from guard_sdk.cli import main\n"
              f"sys.exit(main(['export', {str(tiny_bert)!r}, '-o', {str(tmp_path / 'b')!r}, '-q']))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == ("guard-sdk: error: guard-sdk export needs transformers, which is not "
                                     "installed: pip install 'guard-sdk[export]'")


def test_flags_read_the_same_on_every_command():
    from guard_sdk.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices

    def flags(name):
        return {s for action in commands[name]._actions for s in action.option_strings}

    writes = ["export", "random-checkpoint", "finetune", "distill", "ablation", "augment", "label", "adapt",
              "dapt-experiment", "eval", "bench"]
    assert [c for c in writes if not {"-o", "--output", "--out", "--output-dir"} <= flags(c)] == []
    assert parser.parse_args(["finetune", "--recipe", "r.yaml", "--out", "x"]).output.name == "x"  # not ambiguous
    recipes = ["finetune", "distill", "ablation", "augment", "label", "adapt", "dapt-experiment"]
    assert [c for c in recipes if "--set" not in flags(c)] == []
    reads_data = ["finetune", "distill", "ablation", "augment", "adapt", "dapt-experiment", "eval", "bench"]
    assert [c for c in reads_data if "--data-dir" not in flags(c)] == []
    progress = ["classify", "export", "finetune", "distill", "ablation", "augment", "label", "adapt",
                "dapt-experiment", "eval", "bench"]
    assert [c for c in progress if not {"-q", "--quiet"} <= flags(c)] == []
    assert parser.parse_args(["label", "--recipe", "r.yaml"]).stage == "label"  # the old name still runs it


def test_verify_says_what_the_bundle_scores(categories_bundle):
    out = io.StringIO()
    assert main(["verify", "default"], out=out) == 0
    threshold = Guard.load().threshold
    assert out.getvalue().splitlines()[-1] == (
        f"  threshold {threshold:.4f}, views normalized, payload, sentences, categories violent_crimes, "
        "non_violent_crimes, sex_related_crimes, child_sexual_exploitation, specialized_advice, privacy, "
        "intellectual_property, indiscriminate_weapons, hate, suicide_self_harm, sexual_content, harassment, "
        "misinformation")
    out = io.StringIO()
    assert main(["verify", str(categories_bundle)], out=out) == 0
    assert out.getvalue().splitlines()[-1].endswith("categories violent_crimes, privacy, hate")
