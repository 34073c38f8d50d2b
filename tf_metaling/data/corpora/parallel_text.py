"""Verse-aligned text in several languages, as read from a corpus package.

`ParallelText` holds one list per language, aligned to a shared list of
alignment ids (``quran:2:255``, ``bible:43:3:16``), with None where a
language has no text for an id, and the sections (surahs, chapters) used by
the alignment check.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ParallelText:
    source: str
    ids: list
    columns: dict  # language code -> list[str | None], aligned to ids
    sections: list  # (start, end, name)
    column_names: dict  # language code -> column name in the package
    member: str = ""  # file inside the package the text was read from

    def __post_init__(self):
        for code, texts in self.columns.items():
            if len(texts) != len(self.ids):
                raise ValueError(
                    f"{self.source}: column {code!r} has {len(texts)} entries for "
                    f"{len(self.ids)} ids."
                )


def clean_text(text: str) -> str:
    """One line of text: line breaks and tabs become spaces, ends trimmed."""
    return " ".join(text.replace("\t", " ").splitlines()).strip()
