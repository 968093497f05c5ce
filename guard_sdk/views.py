"""Text views: the text as given, and the same text with an attacker's disguise undone. A bundle declares its views
(guard.json ``views``); the guard scores every view that differs from the text and the most unsafe one decides.

- ``normalized``: NFKC, format characters (zero-width spaces, joiners) removed, look-alike letters folded with
  the bundle's table (``views.fold``: Unicode's confusables that imitate an ASCII letter or digit, written at
  export from the maintained confusable_homoglyphs data), words spelled out letter by letter joined again, and
  leetspeak folded inside words of letters and leetspeak digits.
- ``decoded``: base64 and hex runs, percent-encoding and ROT13 segments that decode to readable text replaced by
  it, then normalized.

Each rule is plain string work so that the Java core (``TextViews``) computes the same text, character for
character; docs/bundle.md states them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Mapping

VIEW_NAMES = ("normalized", "decoded")
LEET_FOLD = {"4": "a", "@": "a", "3": "e", "1": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
MIN_SPELLED_LETTERS = 4  # "a b c" may be a list; four or more single letters in a row spell a word
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
HEX_RUN = re.compile(r"(?:[0-9A-Fa-f]{2}){8,}")
PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
MIN_PERCENT_ESCAPES = 3
SEGMENT = re.compile(r"[^:;.!?\n\"]+")
WORD = re.compile(r"[A-Za-z]+")
# The commonest English words: a segment with none whose ROT13 has some is read as ROT13.
COMMON_WORDS = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she "
    "or an will my one all would there their what so up out if about who get which go me when make can like time no "
    "just him know take people into year your good some could them see other than then now look only come its over "
    "think also back after use two how our work first well way even new want because any these give day most us is "
    "are was were has had been step".split())
READABLE_SHARE = 0.6  # of a decoded run's characters: ASCII letters or spaces


def normalized(text: str, fold: Mapping[str, str]) -> str:
    """The ``normalized`` view of ``text`` under the bundle's look-alike table ``fold``."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(fold.get(c, c) for c in text if unicodedata.category(c) != "Cf")
    return _fold_leet(_join_spelled(text))


def _join_spelled(text: str) -> str:
    """"h o w  t o  m a k e" -> "how to make": a run of single ASCII letters split by single spaces, where two
    spaces part words, joined once it holds MIN_SPELLED_LETTERS letters."""
    tokens = text.split(" ")
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if not _letter(tokens[i]):
            out.append(tokens[i])
            i += 1
            continue
        j, letters = i, 0
        while j < len(tokens) and (_letter(tokens[j]) or (tokens[j] == "" and j + 1 < len(tokens)
                                                            and _letter(tokens[j + 1]))):
            letters += _letter(tokens[j])
            j += 1
        if letters >= MIN_SPELLED_LETTERS:
            out.append("".join(" " if t == "" else t for t in tokens[i:j]))
        else:
            out.extend(tokens[i:j])
        i = j
    return " ".join(out)


def _letter(token: str) -> bool:
    return len(token) == 1 and token.isascii() and token.isalpha()


def _fold_leet(text: str) -> str:
    """Leetspeak digits and signs read as letters, in each space-separated word that has two ASCII letters or
    more and no digit but leetspeak's ("h4ck" -> "hack"; "B12", "10:30" and "covid19" stay)."""
    return " ".join("".join(LEET_FOLD.get(c, c) for c in word) if _leet_word(word) else word
                    for word in text.split(" "))


def _leet_word(word: str) -> bool:
    letters = sum(1 for c in word if c.isascii() and c.isalpha())
    return letters >= 2 and all(c in LEET_FOLD for c in word if c.isascii() and c.isdigit())


def decoded(text: str) -> str:
    """``text`` with its encoded runs replaced by what they decode to, where that is readable text."""
    text = BASE64_RUN.sub(lambda m: _readable(_b64(m.group())) or m.group(), text)
    text = HEX_RUN.sub(lambda m: _readable(bytes.fromhex(m.group())) or m.group(), text)
    if len(PERCENT.findall(text)) >= MIN_PERCENT_ESCAPES:
        text = _percent_decoded(text)
    return SEGMENT.sub(lambda m: _rot13_if_english(m.group()), text)


def _b64(run: str) -> bytes:
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return b""
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        return b""


def _readable(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 without control characters (tab and newlines aside) and at least
    READABLE_SHARE ASCII letters or spaces; else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in text):
        return None
    readable = sum(1 for c in text if c == " " or (c.isascii() and c.isalpha()))
    return text if readable >= READABLE_SHARE * len(text) else None


def _percent_decoded(text: str) -> str:
    """Every %XX as its byte and the rest as UTF-8, decoded as UTF-8 ("+" stays "+"); ``text`` where that fails."""
    out = bytearray()
    i = 0
    while i < len(text):
        if PERCENT.match(text, i):
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode("utf-8", "surrogatepass")
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return text


def _common_words(text: str) -> int:
    return sum(1 for word in WORD.findall(text) if word.lower() in COMMON_WORDS)


def _rot13_if_english(segment: str) -> str:
    """A segment of two words or more with no common English word, whose ROT13 has one, is ROT13-encoded
    English: it is replaced by its ROT13."""
    if len(WORD.findall(segment)) < 2 or _common_words(segment):
        return segment
    turned = codecs.encode(segment, "rot13")
    return turned if _common_words(turned) else segment


def views(text: str, names: tuple[str, ...], fold: Mapping[str, str]) -> dict[str, str]:
    """{"raw": text, and each of ``names``: that view of it} (a view may equal the text: the caller skips it)."""
    found = {"raw": text}
    for name in names:
        found[name] = normalized(text, fold) if name == "normalized" else normalized(decoded(text), fold)
    return found
