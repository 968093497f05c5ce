"""What HarmAug keeps of a generation: the instruction parsed out of the continuation, cleaned,
length-filtered and deduplicated, exactly and by near-duplicate (word n-gram Jaccard), against the seed data
too; and distinct-n, the diversity of what was kept."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from guard_sdk.training.data.schema import normalize

# What a continuation often wraps its instruction in: a list number, a "Prompt:" label, markdown emphasis, quotes.
_LABEL = re.compile(r"^\s*(?:\d+[.)]\s+)?(?:\*\*)?(?:(?:prompt|instruction|request|here it is|here's one)\s*[:\-]\s*)?"
                    r"(?:\*\*)?\s*", re.IGNORECASE)


_QUOTES = "\"'“”‘’`"


# An instruction in quotes with the model's comment after it: the quoted part (a closing quote ends a word).
_QUOTED = re.compile(r"^[\"“‘'`](.+?)[\"”’'`](?=\s|$)")


def parse_instruction(continuation: str) -> str | None:
    """The instruction in a continuation of the prefix, or None when there is none.

    Takes the first non-empty line, drops a list number, a "Prompt:"-style label and the emphasis around
    it; an instruction in quotes is the quoted part, without what the model says after it.
    """
    for line in continuation.strip().splitlines():
        text = _LABEL.sub("", line.strip()).strip().strip("*").strip()
        quoted = _QUOTED.match(text)
        text = (quoted.group(1) if quoted else text).strip(_QUOTES).strip()
        if text:
            return " ".join(text.split())
    return None


def shingles(text: str, n: int = 3) -> frozenset[str]:
    """Word n-grams of the normalised text (the text itself when shorter than n words)."""
    words = normalize(text).split()
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class InstructionFilter:
    """Keeps an instruction only if it is within the word limits, does not echo the request, is new, and is
    not a near-duplicate.

    ``drops`` counts what each rule removed, for the run's summary. An echo shares a run of four words with
    ``request`` (a small model often restates "Make a single harmful instruction prompt ..." instead of
    writing one). Near-duplicates are found by Jaccard similarity of word trigrams through an inverted index,
    so each check touches only texts sharing a trigram.
    """

    min_words: int
    max_words: int
    near_duplicate: float  # Jaccard at or above which two texts are one
    request: str = ""  # the generation request's template; "" checks no echo
    drops: dict[str, int] = field(default_factory=lambda: {"unparsed": 0, "length": 0, "echo": 0, "duplicate": 0,
                                                           "near_duplicate": 0})
    _exact: set[str] = field(default_factory=set)
    _sets: list[frozenset[str]] = field(default_factory=list)
    _index: dict[str, list[int]] = field(default_factory=dict)

    def remember(self, texts: Iterable[str]) -> None:
        """Texts already seen (the seed data, rows of an earlier run) that new ones must not repeat."""
        for text in texts:
            self._add(text)

    def _add(self, text: str) -> None:
        self._exact.add(normalize(text))
        grams = shingles(text)
        for gram in grams:
            self._index.setdefault(gram, []).append(len(self._sets))
        self._sets.append(grams)

    def accept(self, instruction: str | None) -> bool:
        return not self.check(instruction)

    def check(self, instruction: str | None) -> str:
        """"" if ``instruction`` is kept (and remembered), else the rule that dropped it (and counted)."""
        reason = self._reason(instruction)
        if reason:
            self.drops[reason] += 1
        else:
            self._add(instruction)
        return reason

    def _reason(self, instruction: str | None) -> str:
        if instruction is None:
            return "unparsed"
        if not self.min_words <= len(instruction.split()) <= self.max_words:
            return "length"
        if self.request and shingles(instruction, 4) & shingles(self.request, 4):
            return "echo"
        if normalize(instruction) in self._exact:
            return "duplicate"
        grams = shingles(instruction)
        candidates = {i for gram in grams for i in self._index.get(gram, ())}
        if any(jaccard(grams, self._sets[i]) >= self.near_duplicate for i in candidates):
            return "near_duplicate"
        return ""


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n: unique word n-grams over all word n-grams of ``texts`` (1.0: no n-gram repeats)."""
    grams = [tuple(words[i : i + n]) for t in texts for words in [normalize(t).split()]
             for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
