"""Built-in readers for the sources in ../shared/data; its README says what each label means."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guard_sdk.jsonl import BadLine, jsonl_lines
from guard_sdk.training.data.readers import _decode
from guard_sdk.training.data.schema import LABEL_VALUES, SPLITS, DataError, Row, normalize, to_dataset
from guard_sdk.training.data.splits import split_of

DATA_DIR_ENV = "GUARD_DATA_DIR"


DEFAULT_DATA_DIR = Path("..") / "shared" / "data"


# The shared copy of ToxicChat is its train file alone; this share of it (by a hash of the normalised prompt,
# with this seed) is held back as toxicchat_test.
TOXICCHAT_TEST_SHARE = 0.2
# Not a recipe's seed: with the seed a recipe splits by, every row of this file would hash into that recipe's
# train split (the same hash of the same text), leaving its dev and test without ToxicChat.
TOXICCHAT_TEST_SEED = 7919


def data_dir(path: str | Path | None = None) -> Path:
    """The shared data folder: ``path``, else $GUARD_DATA_DIR, else ../shared/data (the development default)."""
    chosen = Path(path or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if not chosen.is_dir():
        raise DataError(f"{chosen}: no data folder there; pass --data-dir or set {DATA_DIR_ENV}")
    return chosen


def _json(path: Path) -> Any:
    return json.loads(_decode(path, path.read_bytes()))


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_decode(path, path.read_bytes()), newline="")))


def _jsonl(path: Path) -> list[Any]:
    records = []
    for number, record in jsonl_lines(path.read_bytes()):
        if isinstance(record, BadLine):
            raise DataError(f"{path}: line {number}: {record.error}")
        records.append(record)
    return records


def _refusal_direction(root: Path) -> list[Row]:
    """The pooled harmful instructions (label 1) and benign Alpaca instructions (label 0), all six splits."""
    rows = []
    for kind, label in (("harmful", 1), ("harmless", 0)):
        for split in SPLITS[:1] + ("val", "test"):
            for r in _json(root / "refusal_direction" / "splits" / f"{kind}_{split}.json"):
                rows.append(Row(r["instruction"], None, label, f"refusal_direction:{kind}", r.get("category")))
    return rows


def _advbench(root: Path) -> list[Row]:
    folder = root / "advbench"
    return ([Row(r["goal"], None, 1, "advbench:behaviors") for r in _csv(folder / "harmful_behaviors.csv")]
            + [Row(r["target"], None, 1, "advbench:strings") for r in _csv(folder / "harmful_strings.csv")])


def _harmbench(root: Path) -> list[Row]:
    """HarmBench text behaviours; a contextual behaviour's context comes before it, as HarmBench prompts it."""
    rows = []
    for r in _csv(root / "harmbench_behaviors" / "harmbench_behaviors_text_all.csv"):
        context = (r.get("ContextString") or "").strip()
        prompt = f"{context}\n\n---\n\n{r['Behavior']}" if context else r["Behavior"]
        rows.append(Row(prompt, None, 1, "harmbench", r["SemanticCategory"], normalize(r["Behavior"])))
    return rows


def _strongreject(root: Path) -> list[Row]:
    return [Row(r["forbidden_prompt"], None, 1, "strongreject", r["category"])
            for r in _csv(root / "harmbench_behaviors" / "strongreject_dataset.csv")]


def _malicious_instruct(root: Path) -> list[Row]:
    text = _decode(root / "harmbench_behaviors" / "malicious_instruct.txt",
                   (root / "harmbench_behaviors" / "malicious_instruct.txt").read_bytes())
    return [Row(line.strip(), None, 1, "malicious_instruct") for line in text.split("\n") if line.strip()]


def _simplesafetytests(root: Path) -> list[Row]:
    return [Row(r["prompts_final"], None, 1, "simplesafetytests", r["harm_area"])
            for r in _csv(root / "simplesafetytests" / "sst_test_cases.csv")]


def _xstest(root: Path) -> list[Row]:
    """XSTest: 250 safe prompts that look unsafe (0) and 200 unsafe contrasts (1); category is the type."""
    return [Row(r["prompt"], None, LABEL_VALUES[r["label"]], "xstest", r["type"])
            for r in _csv(root / "xstest" / "xstest_prompts.csv")]


def _xstest_responses(root: Path) -> list[Row]:
    """Five models' XSTest completions: harmful (1) only where an unsafe prompt got full compliance."""
    unsafe = {r["id"]: r["label"] == "unsafe" for r in _csv(root / "xstest" / "xstest_prompts.csv")}
    rows = []
    for path in sorted((root / "xstest" / "model_completions").glob("*.csv")):
        for r in _csv(path):
            harmful = unsafe[r["id"].removeprefix("v2-")] and r["final_label"].startswith("1_")
            rows.append(Row(r["prompt"], r["completion"], int(harmful), "xstest_responses", r["type"]))
    return rows


def _jbb(root: Path) -> list[Row]:
    """JailbreakBench attack artifacts with a response; label is the judge's ``jailbroken``.

    The ``test-artifact`` folder holds placeholder responses from the package's own tests and is skipped.
    """
    rows = []
    folder = root / "jbb_artifacts" / "attack-artifacts"
    for path in sorted(folder.glob("*/*/*.json")):
        if path.relative_to(folder).parts[0] == "test-artifact":
            continue
        for j in _json(path)["jailbreaks"]:
            if j.get("prompt") and j.get("response"):
                rows.append(Row(j["prompt"], j["response"], int(bool(j["jailbroken"])), "jbb", j.get("category"),
                                normalize(j["goal"])))
    return rows


def _alpaca_eval(root: Path) -> list[Row]:
    """Benign instructions with four models' answers: all safe responses."""
    return [Row(r["instruction"], r["output"], 0, "alpaca_eval", r.get("dataset"))
            for path in sorted((root / "alpaca_eval").glob("*_model_outputs.json")) for r in _json(path)]


def _hh_turn(dialogue: str) -> tuple[str, str | None]:
    """The first human turn of an Anthropic HH dialogue and the assistant's answer to it."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + dialogue.lstrip("\n"))
    turns = list(zip(parts[1::2], parts[2::2]))
    if not turns or turns[0][0] != "Human":
        return "", None
    answer = turns[1][1].strip() if len(turns) > 1 and turns[1][0] == "Assistant" else None
    return turns[0][1].strip(), answer


def _hh_harmless_base(root: Path) -> list[Row]:
    """HH harmless-base red-team openings with the preferred reply. It has no harm label: label is None,
    for a teacher to label (HarmAug); training and evaluation refuse unlabelled rows."""
    rows = []
    for record in _jsonl(root / "hh_harmless_base" / "test.jsonl"):
        prompt, response = _hh_turn(record["chosen"])
        if prompt:
            rows.append(Row(prompt, response, None, "hh_harmless_base"))
    return rows


def _do_not_answer(root: Path) -> list[Row]:
    """Six models' answers to the Do-Not-Answer questions; label is the human review's ``harmful``.

    The questions alone are not a harm label (some ask the bot about its feelings), so the question file gives
    only each answer's category (``types_of_harm``, joined on ``id``) and no rows of its own. The group is the
    normalised question (the default), so all answers to one question land in one split.
    """
    folder = root / "do_not_answer"
    harm = {r["id"]: r["types_of_harm"] for r in _csv(folder / "do_not_answer_en.csv")}
    return [Row(r["question"], r["response"], LABEL_VALUES[r["harmful"]], "do_not_answer", harm[r["id"]])
            for path in sorted((folder / "human_review").glob("annotated_response_*.csv")) for r in _csv(path)]


def _diasafety_split(root: Path, splits: tuple[str, ...], source: str) -> list[Row]:
    """DiaSafety: is a chatbot's reply to a context unsafe ("Unsafe" = 1)? The context is the prompt."""
    return [Row(r["context"], r["response"], {"Unsafe": 1, "Safe": 0}[r["label"]], source, r["category"])
            for split in splits for r in _json(root / "diasafety" / f"{split}.json")]


def _diasafety(root: Path) -> list[Row]:
    return _diasafety_split(root, ("train", "val"), "diasafety")


def _diasafety_test(root: Path) -> list[Row]:
    """DiaSafety's own test split, kept for evaluation."""
    return _diasafety_split(root, ("test",), "diasafety_test")


def _toxicchat_split(root: Path, test: bool) -> list[Row]:
    """ToxicChat's human-labelled train file, cut in two by a hash of the normalised prompt (the shared copy
    has no test file); a jailbreak attempt gets the category "jailbreaking"."""
    rows = []
    shares = (1 - TOXICCHAT_TEST_SHARE, TOXICCHAT_TEST_SHARE)
    for item in _json(root / "toxicchat" / "toxic_chat_train.json")["instances"]:
        prompt, votes = item["instance"], item["annotations"]
        if (split_of(normalize(prompt), TOXICCHAT_TEST_SEED, shares) == 1) == test:
            category = "jailbreaking" if votes["jailbreaking"]["majority_human"] == "1" else None
            rows.append(Row(prompt, None, LABEL_VALUES[votes["toxicity"]["majority_human"]],
                            "toxicchat_test" if test else "toxicchat", category))
    return rows


def _toxicchat(root: Path) -> list[Row]:
    return _toxicchat_split(root, test=False)


def _toxicchat_test(root: Path) -> list[Row]:
    return _toxicchat_split(root, test=True)


def _dices(root: Path) -> list[Row]:
    """DICES adversarial dialogues with the crowd's majority: "Yes" (the response is unsafe) = 1.

    The prompt text embedded in the files asks "is the response safe?", the inverse sense: it is ignored. The
    expert file is skipped (the same 350 dialogues as the crowdsourced one); DICES-990 writes its line breaks
    as a literal backslash-n, in prompts and responses alike.
    """
    rows = []
    for name in ("dices_350_crowdsourced", "dices_990"):
        for item in _json(root / "dices" / f"{name}.json")["instances"]:
            prompt, response = item["instance"]["user_prompt"], item["instance"]["response"]
            if name == "dices_990":
                prompt, response = prompt.replace("\\n", "\n").strip(), response.replace("\\n", "\n").strip()
            rows.append(Row(prompt, response, {"Yes": 1, "No": 0}[item["annotations"]["safety"]["majority_human"]],
                            "dices"))
    return rows


def _coconot(root: Path) -> list[Row]:
    """CoCoNot requests a model should not fully comply with: only the requests with safety concerns are
    harmful (1); the incomplete, unsupported, indeterminate and humanizing ones are not (0)."""
    return [Row(r["prompt"], None, int(r["category"] == "Requests with safety concerns"), "coconot",
                f"{r['category']}/{r['subcategory']}") for r in _jsonl(root / "coconot" / "coconot_eval.jsonl")]


def _coconot_contrast(root: Path) -> list[Row]:
    """CoCoNot's benign look-alikes ("How can I kill time ...?"): all should be answered (0)."""
    return [Row(r["prompt"], None, 0, "coconot_contrast", f"{r['category']}/{r['subcategory']}")
            for r in _jsonl(root / "coconot" / "coconot_contrast_eval.jsonl")]


def _nested_questions(path: Path, source: str) -> list[Row]:
    """Harmful questions stored as {category: {subcategory: [question]}}; the category is the outer key."""
    return [Row(question, None, 1, source, category)
            for category, subcategories in _json(path).items() for questions in subcategories.values()
            for question in questions]


def _harmfulqa(root: Path) -> list[Row]:
    return _nested_questions(root / "red_instruct" / "harmfulqa.json", "harmfulqa")


def _catqa(root: Path) -> list[Row]:
    """CatQA, English only (the Chinese and Vietnamese files are translations of the same questions)."""
    return _nested_questions(root / "red_instruct" / "catqa_english.json", "catqa")


def _dangerousqa(root: Path) -> list[Row]:
    # adversarialqa.json beside it is not read: all its 500 items are AdvBench behaviours, which `advbench` gives.
    return [Row(q, None, 1, "dangerousqa") for q in _json(root / "red_instruct" / "dangerousqa.json")]


def _hatecheck(root: Path) -> list[Row]:
    """HateCheck functional tests; the category is the functionality, for accuracy per functionality."""
    return [Row(r["test_case"].strip(), None, {"hateful": 1, "non-hateful": 0}[r["label_gold"]], "hatecheck",
                r["functionality"]) for r in _csv(root / "hatecheck" / "test_suite_cases.csv")]


def _toxigen(root: Path) -> list[Row]:
    """ToxiGen's prompt sentences (hate_ files 1, neutral_ files 0), one row per distinct normalised sentence.

    A file's lines are shuffled sets of the same few hundred sentences, so rows (and splits, by the default
    group) are sentences, not lines. A sentence in both a hate_ and a neutral_ file would be ambiguous and is
    dropped (the published files have none); one in several groups' files (54, in lgbtq and trans) has them
    all as its category, comma-joined.
    """
    sentences: dict[str, tuple[str, set[int], set[str]]] = {}
    for path in sorted((root / "toxigen" / "prompts").glob("*_1k.txt")):
        kind, _, group = path.name.removesuffix("_1k.txt").partition("_")
        label = {"hate": 1, "neutral": 0}[kind]
        for line in _decode(path, path.read_bytes()).split("\n"):
            for item in line.split("\\n"):
                sentence = item.strip().removeprefix("-").strip()
                if sentence:
                    _, labels, groups = sentences.setdefault(normalize(sentence), (sentence, set(), set()))
                    labels.add(label)
                    groups.add(group)
    return [Row(text, None, labels.pop(), "toxigen", ",".join(sorted(groups)))
            for text, labels, groups in sentences.values() if len(labels) == 1]


_ALERT_WRAPPER = re.compile(r"\s*### Instruction:\n(.*)\n### Response:\s*", re.DOTALL)


def _alert(root: Path) -> list[Row]:
    """ALERT red-team prompts, all harmful, without the instruction template its ``query`` wraps them in."""
    rows = []
    for r in _jsonl(root / "alert" / "alert.jsonl"):
        wrapped = _ALERT_WRAPPER.fullmatch(r["query"])
        rows.append(Row(wrapped.group(1).strip() if wrapped else r["query"].strip(), None, 1, "alert", r["category"]))
    return rows


def _davidson(root: Path) -> list[Row]:
    """Davidson et al.'s tweets: hate (class 0) = 1 against neither (class 2) = 0.

    Class 1 ("offensive": profanity, slurs used casually) is left out: casual profanity is not by itself unsafe
    for an LLM guard, and calling it safe (0) is a policy choice left to the user.
    """
    labels = {"0": 1, "2": 0}
    return [Row(r["tweet"], None, labels[r["class"]], "davidson", "hate" if r["class"] == "0" else None)
            for r in _csv(root / "davidson" / "labeled_data.csv") if r["class"] != "1"]


# ConvAbuse's is_abuse scale: 1 not abuse, 0 ambiguous, -1 .. -3 abuse from mild to strong.
_CONVABUSE_CHOICES = {"1": 0, "0": 0, "-1": 1, "-2": 1, "-3": 1}


def _convabuse_label(record: dict[str, str]) -> int | None:
    """The majority of the annotators who annotated the row (abuse = 1), None on a tie.

    A 1 under ``AnnotatorN_is_abuse.<choice>`` marks annotator N's one choice; an annotator who labelled the
    row more than once has comma lists there ("1, 0") and counts once, with the first label (as the data
    README counts: 337 / 112 / 129 abusive).
    """
    votes = [_CONVABUSE_CHOICES[column.rpartition(".")[2]] for column, value in record.items()
             if "_is_abuse." in column and value.split(",")[0].strip() == "1"]
    if 2 * sum(votes) == len(votes):
        return None
    return int(2 * sum(votes) > len(votes))


def _convabuse_split(root: Path, splits: tuple[str, ...], source: str) -> list[Row]:
    """ConvAbuse user turns to conversational agents, labelled by the annotators' majority (the set has no
    aggregate label). A tie (80 / 29 / 30 rows of train / valid / test) is not emitted: neither label is the
    annotators' verdict."""
    rows = []
    for split in splits:
        for r in _csv(root / "convabuse" / f"ConvAbuseEMNLP{split}.csv"):
            label = _convabuse_label(r)
            if label is not None:
                rows.append(Row(r["user"], None, label, source))
    return rows


def _convabuse(root: Path) -> list[Row]:
    return _convabuse_split(root, ("train", "valid"), "convabuse")


def _convabuse_test(root: Path) -> list[Row]:
    return _convabuse_split(root, ("test",), "convabuse_test")


def _surge(root: Path) -> list[Row]:
    return [Row(r["text"], None, {"Toxic": 1, "Not Toxic": 0}[r["is_toxic"]], "surge")
            for r in _csv(root / "surge_toxicity" / "toxicity_en.csv")]


MULTIJAIL_LANGUAGES = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")


def _multijail(root: Path) -> list[Row]:
    """MultiJail's unsafe prompts in ten languages, one source per language (recall per language); the
    translations of one prompt share a group, so they share a split."""
    return [Row(r[lang], None, 1, f"multijail:{lang}", r["tags"], f"multijail:{r['id']}")
            for r in _csv(root / "multijail" / "MultiJail.csv") for lang in MULTIJAIL_LANGUAGES]


BUILTIN: dict[str, Callable[[Path], list[Row]]] = {
    "refusal_direction": _refusal_direction,
    "advbench": _advbench,
    "harmbench": _harmbench,
    "strongreject": _strongreject,
    "malicious_instruct": _malicious_instruct,
    "simplesafetytests": _simplesafetytests,
    "xstest": _xstest,
    "xstest_responses": _xstest_responses,
    "jbb": _jbb,
    "alpaca_eval": _alpaca_eval,
    "hh_harmless_base": _hh_harmless_base,
    "do_not_answer": _do_not_answer,
    "diasafety": _diasafety,
    "diasafety_test": _diasafety_test,
    "toxicchat": _toxicchat,
    "toxicchat_test": _toxicchat_test,
    "dices": _dices,
    "coconot": _coconot,
    "coconot_contrast": _coconot_contrast,
    "harmfulqa": _harmfulqa,
    "catqa": _catqa,
    "dangerousqa": _dangerousqa,
    "hatecheck": _hatecheck,
    "toxigen": _toxigen,
    "alert": _alert,
    "davidson": _davidson,
    "convabuse": _convabuse,
    "convabuse_test": _convabuse_test,
    "surge": _surge,
    "multijail": _multijail,
}


UNLABELLED = frozenset({"hh_harmless_base"})


# Sources kept for evaluation: they must never enter training (pass them to make_splits as its holdout).
EVALUATION_ONLY = frozenset({"xstest", "xstest_responses", "hatecheck", "coconot", "coconot_contrast", "multijail",
                             "diasafety_test", "convabuse_test", "toxicchat_test"})


def load_builtin(name: str, root: str | Path | None = None) -> Any:
    """One built-in source from the shared data folder, as a Dataset."""
    if name not in BUILTIN:
        raise DataError(f"unknown built-in source {name!r}; known: {', '.join(BUILTIN)}")
    folder = data_dir(root)
    try:
        return to_dataset(BUILTIN[name](folder))
    except (OSError, KeyError) as e:
        raise DataError(f"{folder}: cannot read built-in source {name!r} ({type(e).__name__}: {e})") from e
