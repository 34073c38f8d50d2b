"""Per-sentence encoding checks for packaged corpora.

Three defects are detected, each a sign that the text is not what its authors
wrote:

- ``replacement_character``: U+FFFD, left where a decoder met bytes it could
  not read. The original characters are lost.
- ``mojibake``: UTF-8 bytes decoded as Windows-1252 (``â€™`` for ``’``,
  ``Ã©`` for ``é``). A run of such characters is only flagged when
  re-encoding it as Windows-1252 gives valid UTF-8 with a non-ASCII
  character, so ordinary accented text is not flagged.
- ``no_letters``: nothing alphabetic (empty verses, ``[]`` placeholders).

`script_of` measures the writing system(s) of a text from Unicode character
names, so the corpus table reports what the text is written in rather than
what a language is expected to use.
"""

from __future__ import annotations

import collections
import re
import unicodedata
from collections.abc import Iterable

REPLACEMENT_CHARACTER = "\ufffd"
DEFECTS = ("replacement_character", "mojibake", "no_letters")

# Characters Windows-1252 maps bytes 0x80-0xFF to (Latin-1 range and the
# 0x80-0x9F punctuation block).
_CP1252_HIGH = "".join(bytes([b]).decode("cp1252", errors="ignore") for b in range(0x80, 0x100))
_MOJIBAKE_RUN = re.compile("[" + re.escape(_CP1252_HIGH) + "]{2,}")

_SCRIPT_NAMES = {
    "ARABIC": "Arabic",
    "BENGALI": "Bengali",
    "CJK": "Han",
    "CYRILLIC": "Cyrillic",
    "DEVANAGARI": "Devanagari",
    "GREEK": "Greek",
    "HANGUL": "Hangul",
    "HEBREW": "Hebrew",
    "HIRAGANA": "Hiragana",
    "KATAKANA": "Katakana",
    "LATIN": "Latin",
    "MALAYALAM": "Malayalam",
    "TAMIL": "Tamil",
    "TELUGU": "Telugu",
    "THAI": "Thai",
}


def looks_like_mojibake(text: str) -> bool:
    for match in _MOJIBAKE_RUN.finditer(text):
        run = match.group(0)
        try:
            repaired = run.encode("cp1252").decode("utf-8")
        except UnicodeError:
            continue
        if any(ord(ch) > 127 for ch in repaired):
            return True
    return False


def sentence_defect(text: str) -> str | None:
    """The first defect of `text` (see module docstring), or None."""
    if REPLACEMENT_CHARACTER in text:
        return "replacement_character"
    if looks_like_mojibake(text):
        return "mojibake"
    if not any(ch.isalpha() for ch in text):
        return "no_letters"
    return None


def script_counts(texts: Iterable[str]) -> collections.Counter:
    """Letters per script (distinct characters are named once: texts are large)."""
    characters = collections.Counter()
    for text in texts:
        characters.update(text)
    counts = collections.Counter()
    for ch, n in characters.items():
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        first = name.split(" ", 1)[0] if name else "UNKNOWN"
        counts[_SCRIPT_NAMES.get(first, first.title())] += n
    return counts


def script_of(texts: Iterable[str], min_share: float = 0.05) -> str:
    """Scripts holding at least `min_share` of the letters, most used first."""
    counts = script_counts(texts)
    total = sum(counts.values())
    if not total:
        return "none"
    kept = [s for s, n in counts.most_common() if n >= min_share * total]
    return "+".join(kept)
