"""Categories in the verdict, and a policy over them: the rule, its file, and the same answers at load or per call."""

from __future__ import annotations

import json

import pytest

from guard_sdk import Guard
from guard_sdk.errors import PolicyError
from guard_sdk.policy import Policy, decide

from .conftest import CATEGORY_HEADS, SAFE_TEXTS, UNSAFE_TEXTS

BUNDLE_CUTS = {"hate": 0.5, "violence": 0.5, "privacy": 0.5}


@pytest.mark.parametrize("score,cats,policy,expected", [
    # No policy: P(unsafe) alone decides, as before categories; violations are reported either way.
    (0.9, {"hate": 0.8, "violence": 0.1, "privacy": 0.2}, Policy(), (True, ("hate",))),
    (0.2, {"hate": 0.8, "violence": 0.1, "privacy": 0.2}, Policy(), (False, ("hate",))),
    (0.9, {"hate": 0.1, "violence": 0.1, "privacy": 0.2}, Policy(), (True, ())),  # uncategorised: blocked
    # Allowing the one harm that explains it releases the text; a second harm still blocks it.
    (0.9, {"hate": 0.8, "violence": 0.1, "privacy": 0.2}, Policy(allow=("hate",)), (False, ())),
    (0.9, {"hate": 0.8, "violence": 0.7, "privacy": 0.2}, Policy(allow=("hate",)), (True, ("violence",))),
    # Enforcing only some categories releases the others.
    (0.9, {"hate": 0.8, "violence": 0.1, "privacy": 0.2}, Policy(enforce=("violence",)), (False, ())),
    (0.9, {"hate": 0.1, "violence": 0.1, "privacy": 0.2}, Policy(uncategorised="allow"), (False, ())),
    # A policy threshold is stricter for that harm: its violation blocks on its own, and it orders by score.
    (0.2, {"hate": 0.35, "violence": 0.1, "privacy": 0.6}, Policy(thresholds={"hate": 0.3}),
     (True, ("privacy", "hate"))),
    (0.2, {"hate": 0.25, "violence": 0.1, "privacy": 0.6}, Policy(thresholds={"hate": 0.3}), (False, ("privacy",))),
    (0.9, {"hate": 0.8, "violence": 0.1, "privacy": 0.2}, Policy(thresholds={"hate": 0.9}), (True, ())),
])
def test_the_rule(score, cats, policy, expected):
    assert decide(score, 0.5, cats, BUNDLE_CUTS, policy) == expected


@pytest.mark.parametrize("data,message", [
    ({"enforce": "hate"}, r"\$\.enforce: 'hate' is not of type 'array', 'null'"),
    ({"allow": ["hate"], "enforce": ["hate"]}, "hate both enforced and allowed"),
    ({"thresholds": {"hate": 2}}, r"\$\.thresholds\.hate: 2 is greater than the maximum of 1"),
    ({"thresholds": {"hate": float("nan")}}, r"\$\.thresholds\.hate: nan is outside \[0, 1\]"),
    ({"block": ["hate"]}, "Additional properties are not allowed"),
    ({"uncategorised": "maybe"}, r"\$\.uncategorised"),
])
def test_a_bad_policy_is_refused_with_the_field(data, message):
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(data)


def test_a_policy_file_is_one_json_object(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"allow": ["privacy"], "thresholds": {"hate": 0.3}}))
    assert Policy.load(path) == Policy(allow=("privacy",), thresholds={"hate": 0.3})
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="not a JSON policy file"):
        Policy.load(path)
    path.write_text("[]")
    with pytest.raises(PolicyError, match="holds one JSON object"):
        Policy.load(path)
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        Policy.load(tmp_path / "missing.json")


TEXTS = UNSAFE_TEXTS + SAFE_TEXTS


def test_a_bundle_with_categories_scores_each_and_reports_violations(categories_bundle):
    guard = Guard.load(categories_bundle)
    assert guard.categories == list(CATEGORY_HEADS) and guard.manifest.schema_version == 3
    verdicts = guard.classify_batch(TEXTS)
    for v in verdicts:
        assert list(v.categories) == list(CATEGORY_HEADS)
        over = [n for n in CATEGORY_HEADS if v.categories[n] >= 0.5]  # no training record: 0.5 each
        assert sorted(v.violations) == sorted(over)
        assert [v.categories[n] for n in v.violations] == sorted((v.categories[n] for n in over), reverse=True)
        assert v.unsafe == (v.score >= guard.threshold)  # no policy: the one bit as before
    flagged = [v for v in verdicts if v.unsafe]
    assert flagged and all("violent_crimes" in v.violations for v in flagged)
    assert any("privacy" in v.violations and not v.unsafe for v in verdicts)  # reported, not blocking
    assert verdicts[0].to_dict()["categories"] == verdicts[0].categories


def test_allowing_a_category_turns_its_violations_off_and_nothing_else(categories_bundle):
    plain = Guard.load(categories_bundle).classify_batch(TEXTS)
    allowed = Guard.load(categories_bundle, policy={"allow": ["violent_crimes"]}).classify_batch(TEXTS)
    for before, after in zip(plain, allowed):
        assert after.violations == tuple(n for n in before.violations if n != "violent_crimes")
        assert after.categories == before.categories and after.score == before.score
        released = before.unsafe and before.violations == ("violent_crimes",)
        assert after.unsafe == (before.unsafe and not released)
    assert any(b.unsafe and not a.unsafe for b, a in zip(plain, allowed))


def test_a_policy_per_call_replaces_the_guards_own(categories_bundle, tmp_path):
    path = tmp_path / "strict.json"
    path.write_text(json.dumps({"thresholds": {"privacy": 0.5}}))
    guard = Guard.load(categories_bundle, policy={"allow": ["violent_crimes"]})
    strict = guard.classify_batch(TEXTS, policy=path)  # privacy with a threshold of its own blocks by itself
    assert strict == Guard.load(categories_bundle, policy=path).classify_batch(TEXTS)
    assert any(v.unsafe and v.score < guard.threshold and v.violations[0] == "privacy" for v in strict)
    assert guard.classify(TEXTS[0]) == guard.classify_batch(TEXTS[:1])[0]  # the guard's own policy again


def test_a_policy_naming_a_category_the_bundle_lacks_is_refused(categories_bundle, bert_bundle):
    with pytest.raises(PolicyError, match="names elections, which this bundle does not score; it scores: "
                                          "violent_crimes, privacy, hate"):
        Guard.load(categories_bundle, policy={"allow": ["elections"]})
    guard = Guard.load(bert_bundle)
    assert guard.categories == [] and guard.classify(TEXTS[0]).categories == {}
    with pytest.raises(PolicyError, match="a bundle without a category head"):
        guard.classify(TEXTS[0], policy={"enforce": ["hate"]})
    with pytest.raises(PolicyError, match="a policy is a Policy, a mapping or a file path, got int"):
        guard.classify(TEXTS[0], policy=3)


def test_export_checks_each_categorys_parity_and_records_the_head(categories_bundle):
    data = json.loads((categories_bundle / "guard.json").read_text())
    assert data["categories"] == [{"name": n, "index": 2 + i, "threshold": 0.5} for i, n in enumerate(CATEGORY_HEADS)]
    fp32, int8 = data["artifacts"]
    assert fp32["parity"]["category_max_abs_diff"] < 1e-4 and fp32["parity"]["category_agreement"] == 1.0
    assert 0 <= int8["parity"]["category_max_abs_diff"] <= 1.0 and int8["parity"]["category_agreement"] >= 0.75
