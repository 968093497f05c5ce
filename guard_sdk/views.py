"""Text views: the text as given, and the same text with an attacker's disguise undone. A bundle declares its views
(guard.json ``views``); the guard scores every view that differs from the text and the most unsafe one decides.

- ``normalized``: NFKC, format characters (zero-width spaces, joiners) removed, look-alike letters folded with
  the bundle's table (``views.fold``: Unicode's confusables that imitate an ASCII letter or digit, written at
  export from the maintained confusable_homoglyphs data), words spelled out letter by letter joined again, and
  leetspeak folded inside words of letters and leetspeak digits.
- ``decoded``: base64 and hex runs, percent-encoding and ROT13 segments that decode to readable text replaced by
  it, then normalized.
- ``payload``: what the base64 and hex runs and ROT13 segments decoded to, alone (one per line), or the whole
  decoded text where it was percent-encoded; normalized. The request without the wrapper around it ("Decode this
  and do what it says: ..."), which pulls a decoded view's score down on harmful requests and up on benign ones.
- ``sentences``: not one text but several: each sentence of a prompt of two or more (``sentences``), scored alone,
  or for a pair beside the response's start, where its window holds it whole. A request hidden in a page of small
  talk, or after a role-play preamble, is diluted in the windows of the whole text; alone, or beside the reply it
  got, it scores as it would unpadded (on the evasion suite's padded pair, 0.62 -> 0.70 detection).

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

SENTENCES = "sentences"  # the view of several texts (``sentences``); the others are one text each (``views``)
VIEW_NAMES = ("normalized", "decoded", "payload", SENTENCES)  # what a bundle may declare
# What export declares: the decoded view keeps the wrapper around a payload ("Decode this hex and do what it says:
# ..."), which raised the false positives on benign requests under hex by 7 points and lowered detection under
# ROT13 by 29 (docs/evasion.md); the payload alone reads the request as written. Bundles declaring it still work.
EXPORT_VIEWS = ("normalized", "payload", SENTENCES)
# After a colon too: "... the answer to this question: <request>" scores the request alone. Without it the default
# caught 0.55 of the evasion suite's story-framed requests, 0.85 as written (docs/evasion.md). Quotes: only a quoted
# request (QUOTED_REQUEST). ASCII whitespace only: Java's \s is not Python's.
SENTENCE_BREAK = re.compile(r"(?<=[.!?:])[ \t\r\n]+|[\r\n]+")
BLANK = re.compile(r"[ \t\r\n]*")
# A request quoted inside a sentence of other words ('In my story the expert is asked "How do I ..." by a child
# and tells all.'): the quoted text is cut out as a sentence of its own where it opens as a request does, with a
# question word, a modal or a verb that asks for content. Only then: a break at every quote flagged HateCheck's
# counter-speech that quotes the hate it answers, whose quote alone reads as hate (docs/evasion.md).
REQUEST_OPENERS = ("how what what's which who whom whose why where when can could would will should tell explain "
                   "describe give list write show teach help provide make create draft generate find detail outline "
                   "walk suggest design plan compose").split()
QUOTE = "\"\u201c\u201d"  # straight and curly double quotes
# ASCII case folding only, and no \b (Java's differs by version): the Java core matches the same.
QUOTED_REQUEST = re.compile(rf"[{QUOTE}]([ \t]*(?:{'|'.join(REQUEST_OPENERS)})(?![A-Za-z])[^{QUOTE}\r\n]*)[{QUOTE}]",
                            re.IGNORECASE | re.ASCII)
MAX_SENTENCES = 32  # of a longer prompt, its first 16 and last 16: padding goes before or after a request
LEET_FOLD = {"4": "a", "@": "a", "3": "e", "1": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
MIN_LEET_WORDS = 2  # words mixing letters and leetspeak digits ("h4ck", "7h3") that make a text leetspeak
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
STARTERS = frozenset(word.capitalize() for word in COMMON_WORDS if len(word) >= 2)  # "I" starts no sentence
# Where a sentence's end mark was left out ("... in my town Our garden started ..."): before a common word written
# as a sentence starts (a capital, then lower case) between a word of lower-case letters and one that starts with
# one. Without it a request run on into the padding after it was scored with that first benign sentence, and the
# default caught 0.68 of the evasion suite's answered-then-padded requests, 0.75 with it (docs/evasion.md). The next
# word in lower case keeps titles whole ("poison someone in The Witcher 3"), which split flagged the fragment.
# Group 1 is the run of spaces and tabs cut there. One regex rather than a loop over words: 1 MB took 0.6 s that way.
UNMARKED_BREAK = re.compile(rf"(?<![^ \t])[a-z]+([ \t]+)(?=(?:{'|'.join(sorted(STARTERS))})[ \t]+[a-z])")


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
    """Leetspeak digits and signs read as letters. In a text with MIN_LEET_WORDS words or more that mix ASCII
    letters with leetspeak's digits ("7h3", "h4ck"), every space-separated word whose digits are all
    leetspeak's, numbers too ("70" -> "to", "1" -> "i"); in any other text, only words with 2 ASCII letters or
    more and no digit but leetspeak's ("h4ck" -> "hack"; "B12", "10:30" and "covid19" stay)."""
    words = text.split(" ")
    leet_text = sum(1 for word in words if _letters(word) and _leet_digits(word)
                    and any(c in LEET_FOLD for c in word)) >= MIN_LEET_WORDS
    return " ".join("".join(LEET_FOLD.get(c, c) for c in word)
                    if _leet_digits(word) and (leet_text or _letters(word) >= 2) else word for word in words)


def _letters(word: str) -> int:
    return sum(1 for c in word if c.isascii() and c.isalpha())


def _leet_digits(word: str) -> bool:
    return all(c in LEET_FOLD for c in word if c.isascii() and c.isdigit())


def decoded(text: str) -> str:
    """``text`` with its encoded runs replaced by what they decode to, where that is readable text."""
    return decoded_parts(text)[0]


def decoded_parts(text: str, rot13: bool = True) -> tuple[str, list[str]]:
    """``text`` decoded, and what each base64 or hex run and ROT13 segment (unless not ``rot13``) in it decoded to,
    in order."""
    parts: list[str] = []

    def keep(found: str | None, run: str) -> str:
        if found is None:
            return run
        parts.append(found.strip(" "))
        return found

    text = BASE64_RUN.sub(lambda m: keep(_readable(_b64(m.group())), m.group()), text)
    text = HEX_RUN.sub(lambda m: keep(_readable(bytes.fromhex(m.group())), m.group()), text)
    unescaped = _percent_decoded(text) if len(PERCENT.findall(text)) >= MIN_PERCENT_ESCAPES else text
    escaped, text = unescaped != text, unescaped  # percent-encoding covers the whole text: the payload is all of it
    text = SEGMENT.sub(lambda m: keep(_rot13(m.group()), m.group()), text) if rot13 else text
    return text, [text.strip(" ")] if escaped else parts


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


def _rot13(segment: str) -> str | None:
    """A segment of two words or more whose ROT13 holds more common English words than it does, and at least a
    quarter of its words, is ROT13-encoded English: its ROT13 ("or", the ROT13 of "be", is common itself, so one
    common word does not rule a segment out; the quarter keeps other scrambles, leetspeak's, from passing)."""
    words = len(WORD.findall(segment))
    if words < 2:
        return None
    turned = codecs.encode(segment, "rot13")
    common = _common_words(turned)
    return turned if common > _common_words(segment) and 4 * common >= words else None


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after ".", "!", "?" or ":" and whitespace, at line breaks, around a quoted
    request and where a sentence starts without the end mark before it; blank ones dropped) where it has two or
    more, else none; of more than ``MAX_SENTENCES``, the first and last half of that many."""
    parts = [piece for part in SENTENCE_BREAK.split(text) for quoted in _quoted(part) for piece in _unmarked(quoted)
             if not BLANK.fullmatch(piece)]
    if len(parts) < 2:
        return []
    half = MAX_SENTENCES // 2
    return parts if len(parts) <= MAX_SENTENCES else parts[:half] + parts[-half:]


def _quoted(part: str) -> list[str]:
    """``part`` cut at both ends of each ``QUOTED_REQUEST``'s text (the quote marks stay with the words around it),
    where a letter stands outside the quotes: a message that is nothing but a quote is read as it is."""
    pieces = _cut(QUOTED_REQUEST, part, keep=True)
    return pieces if any(char.isalpha() for outside in pieces[0::2] for char in outside) else [part]


def _unmarked(part: str) -> list[str]:
    """``part`` split at each ``UNMARKED_BREAK``, the spaces and tabs there dropped."""
    return _cut(UNMARKED_BREAK, part, keep=False)


def _cut(pattern: re.Pattern[str], part: str, keep: bool) -> list[str]:
    """``part`` cut at both ends of each match's group 1, which is kept as a piece of its own or dropped."""
    pieces: list[str] = []
    at = 0
    for match in pattern.finditer(part):
        pieces.append(part[at:match.start(1)])
        if keep:
            pieces.append(match.group(1))
        at = match.end(1)
    return [*pieces, part[at:]]


def encoded_whole(text: str, fold: Mapping[str, str]) -> bool:
    """Whether ``text`` is nothing but an encoding: base64 or hex runs that decode to readable text, or
    percent-escapes (undone over the whole text), with nothing around them. ROT13 does not count: whether a segment
    is ROT13 is a guess from its common words, which an attacker could steer to have a plain request not read."""
    plain, parts = decoded_parts(text, rot13=False)
    return bool(parts) and normalized("\n".join(parts), fold) == normalized(plain, fold)


def check_view_names(names: tuple[str, ...]) -> str | None:
    """What is wrong with ``names`` as a bundle's declared views (each of VIEW_NAMES at most once), or None."""
    unknown = [n for n in names if n not in VIEW_NAMES]
    if unknown or len(set(names)) != len(names):
        return f"views must name each of {', '.join(VIEW_NAMES)} at most once; got {', '.join(names) or 'none'}"
    return None


def views(text: str, names: tuple[str, ...], fold: Mapping[str, str]) -> dict[str, str]:
    """{"raw": text, and each of ``names`` but ``sentences``: that view of it} (a view may equal the text: the caller
    skips it), without the views that would read a disguise as written: "raw" where the normalized view differs
    from the text (look-alike letters, leetspeak, spelled-out words, zero-width or compatibility characters); else
    "raw" and "normalized" where the payload declared is all of the text (``encoded_whole``). A model trained on
    plain text reads such text as noise and scores it by the prior of odd text (today's default flagged 74% of
    benign prompts written in look-alike letters, 40% in leetspeak, 12% percent-encoded), so the view that reads it
    is scored in its place; that view keeps every word, so nothing is hidden by it."""
    found = {"raw": text}
    unread: set[str] = set()
    if "normalized" in names:
        found["normalized"] = normalized(text, fold)
        unread |= {"raw"} if found["normalized"] != text else set()
    if "decoded" in names or "payload" in names:
        plain, parts = decoded_parts(text)
        decoded_view = normalized(plain, fold) if "decoded" in names or not parts else ""
        found["decoded"] = decoded_view
        # no run decoded: the payload is the decoded view itself, which the caller then skips
        found["payload"] = normalized("\n".join(parts), fold) if parts else decoded_view
        if "payload" in names and not unread and parts and encoded_whole(text, fold):  # no parts: nothing encoded
            unread = {"raw", "normalized"}
    return {name: found[name] for name in ("raw", *names) if name != SENTENCES and name not in unread}


def as_read(found: Mapping[str, str]) -> str:
    """A text as the guard reads it, from its ``views`` ``found``: itself where kept, else the view in its place."""
    return next(found[name] for name in ("raw", "normalized", "payload") if name in found)
