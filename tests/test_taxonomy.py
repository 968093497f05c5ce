"""The taxonomy and the mapping of every source's own categories onto it."""

from __future__ import annotations

import ast
from collections import Counter

import pytest

from guard_sdk.categories import BY_NAME, NAMES, OPENAI_MODERATION, TAXONOMY
from guard_sdk.training.data.sources import BUILTIN, EVALUATION_ONLY
from guard_sdk.training.data.taxonomy import BY_SOURCE, BY_STRING, UNMAPPED, categories_of

from .test_sources_public import _read, root  # noqa: F401  (root: the shared data folder fixture)


def test_the_taxonomy_is_llama_guard_3s_hazards_and_two_more():
    assert [c.code for c in TAXONOMY] == [f"S{i}" for i in range(1, 15)] + ["X1", "X2"]
    assert len(set(NAMES)) == len(NAMES) and BY_NAME["hate"].code == "S10"
    mapped = {name for cats in (*BY_STRING.values(), *BY_SOURCE.values(), *OPENAI_MODERATION.values())
              for name in cats}
    assert mapped <= set(NAMES)
    assert not set(BY_STRING) & UNMAPPED
    assert len(OPENAI_MODERATION) == 13 and OPENAI_MODERATION["sexual/minors"] == ("child_sexual_exploitation",)


@pytest.mark.parametrize("source,category,label,expected", [
    ("catqa", "Child Abuse", 1, ("child_sexual_exploitation",)),
    ("catqa", "Child Abuse", 0, ()),  # a safe row has no category, whatever its source says
    ("multijail:sw", "['Weapons', 'Violence & incitement']", 1, ("non_violent_crimes", "violent_crimes")),
    ("multijail:en", "['Non-violent unethical behavior (e.g. lying, cheating, etc.)', 'Theft']", 1,
     ("non_violent_crimes",)),
    ("multijail:en", "['Non-violent unethical behavior (e.g. lying, cheating, etc.)']", 1, None),
    ("toxigen", "lgbtq,trans", 1, ("hate",)),  # the targeted group: every hateful ToxiGen row is hate
    ("convabuse", None, 1, ("harassment",)),
    ("harmfulqa", "Mathematics and Logic", 1, None),  # a subject, not a harm
    ("advbench", None, 1, None),
    ("harmbench", "illegal", 1, None),  # a catch-all
    ("refusal_direction:harmful", "chemical_biological", 1, ("indiscriminate_weapons",)),
    ("mine.csv", "hate", 1, ("hate",)),  # a user's file: categories named as ours count
    ("mine.csv", "racism", 1, None),  # and any other string is unknown, not an error
])
def test_a_rows_categories(source, category, label, expected):
    assert categories_of(source, category, label) == expected


def test_a_category_string_nobody_mapped_is_an_error_not_unknown():
    with pytest.raises(KeyError, match="Cannibalism"):
        categories_of("alert", "Cannibalism", 1)


def test_every_unsafe_row_of_the_shared_data_maps_and_every_mapped_string_occurs(root):  # noqa: F811
    train, evaluation, unknown, seen = Counter(), Counter(), Counter(), set()
    for name in BUILTIN:
        for row in _read(root, name):
            cats = categories_of(row.source, row.category, row.label)
            if row.label != 1:
                continue
            seen.add(row.category)
            if name == "multijail":
                seen.update(ast.literal_eval(row.category))  # its tags: a Python list literal
            if cats is None:
                unknown[name] += 1
            for cat in cats or ():
                (evaluation if name in EVALUATION_ONLY else train)[cat] += 1
    assert set(BY_STRING) - seen == set() and UNMAPPED - seen == set()  # no entry for a string the data lacks
    # Unsafe rows per category over every source (before deduplication and caps); docs/taxonomy.md's counts.
    assert train == {"hate": 7354, "non_violent_crimes": 5358, "violent_crimes": 2283, "harassment": 1905,
                     "suicide_self_harm": 1428, "misinformation": 1376, "specialized_advice": 970,
                     "sexual_content": 807, "indiscriminate_weapons": 674, "privacy": 587, "sex_related_crimes": 383,
                     "intellectual_property": 100, "child_sexual_exploitation": 70, "elections": 50}
    assert evaluation["hate"] == 3401 and "defamation" not in train | evaluation
    assert unknown["harmfulqa"] == 1960 and unknown["advbench"] == 1094
    assert sum(n for name, n in unknown.items() if name not in EVALUATION_ONLY) == 6114


def test_the_taxonomy_page_names_every_mapped_string_and_every_category():
    page = open("docs/taxonomy.md", encoding="utf-8").read()
    missing = [s for s in (*BY_STRING, *UNMAPPED, *NAMES, *OPENAI_MODERATION) if f"`{s}`" not in page and
               f"| {s} |" not in page and f", {s}" not in page and f"| {s}," not in page]
    assert not missing
