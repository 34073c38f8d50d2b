"""Streaming reader for plain-text corpora: one sentence or document per line.

Files may be gzip-compressed (``.gz``). Lines are read one at a time (memory
does not grow with the file), decoded as strict UTF-8, and stripped of the
line break and surrounding whitespace. Blank lines separate documents in many
corpora; they are not text, so they are counted in `stats` rather than
yielded. Invalid UTF-8 raises `DataFormatError` with file:line and the byte
offset, an empty file (no text line) raises too; ``on_error="skip"`` skips
undecodable lines and counts them in `report`.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator, Sequence

from tf_metaling.data.errors import DataFormatError, ErrorPolicy


def open_binary(path) -> io.BufferedIOBase:
    """Opens `path` for binary reading, decompressing ``.gz`` files."""
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def decode_line(raw: bytes, path, line_number: int, language=None, field="text") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start} of the line)",
            path=path,
            line=line_number,
            field=field,
            language=language,
            expected="UTF-8 text",
        ) from None


class TextLineReader:
    """Iterates the text lines of one or more files of one language.

    Args:
        paths: a path or a sequence of paths (``.gz`` is decompressed).
        language: the language code of the text (for error messages and checks).
        languages: optional `LanguageVocabulary`; `language` must be in it.
        on_error: ``"raise"`` (default) or ``"skip"`` (undecodable lines are
            skipped and counted in `report`).

    After iteration, `stats` holds ``lines``, ``text_lines`` and
    ``blank_lines`` per reader.
    """

    def __init__(self, paths, language: str, languages=None, on_error: str = "raise"):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths: Sequence[str] = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError(f"No text files given for language {language!r}.")
        if languages is not None:
            languages.check([language], where=f"text files {self.paths}")
        self.language = language
        self._policy = ErrorPolicy(on_error, source=", ".join(self.paths))
        self.stats = {"lines": 0, "text_lines": 0, "blank_lines": 0}

    @property
    def report(self):
        return self._policy.report

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            text_lines = 0
            with open_binary(path) as f:
                for line_number, raw in enumerate(f, start=1):
                    self.stats["lines"] += 1
                    try:
                        line = decode_line(raw, path, line_number, self.language)
                    except DataFormatError as error:
                        self._policy.handle(error)
                        continue
                    line = line.strip()
                    if not line:
                        self.stats["blank_lines"] += 1
                        continue
                    self.stats["text_lines"] += 1
                    text_lines += 1
                    yield line
            if text_lines == 0 and not self.report.total:
                raise DataFormatError(
                    "empty file: no text line",
                    path=path,
                    language=self.language,
                    expected="one sentence or document per line",
                )
        self.report.log()


def count_text_lines(paths) -> int:
    """Number of non-blank lines (fast, byte-level; used for sampling sizes)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    total = 0
    for path in paths:
        with open_binary(path) as f:
            for raw in f:
                if raw.strip():
                    total += 1
    return total
