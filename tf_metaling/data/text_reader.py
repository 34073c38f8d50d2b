"""Streaming reader for plain-text corpora: one sentence or document per line.

Files may be gzip-compressed (``.gz``). Lines are read one at a time (memory
does not grow with the file), decoded as strict UTF-8, and stripped of the
line break and surrounding whitespace. Blank lines separate documents in many
corpora; they are not text, so they are counted in `stats` rather than
yielded. Invalid UTF-8 raises `DataFormatError` with file:line and the byte
offset, an empty file (no text line) raises too; ``on_error="skip"`` skips
undecodable lines and counts them in `report`. `text_line_dataset` is the
same reader as a `tf.data` pipeline stage, for training throughput.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator, Sequence

import tensorflow as tf

from tf_metaling.errors import DataFormatError, ErrorPolicy


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


def first_text_line_number(path) -> int | None:
    """Line number of the first non-blank line of a file, or None."""
    with open_binary(path) as f:
        for line_number, raw in enumerate(f, start=1):
            if raw.strip():
                return line_number
    return None


def text_line_dataset(paths, language: str) -> tf.data.Dataset:
    """The tf.data twin of `TextLineReader`, for training pipelines.

    Lines are read by `tf.data.TextLineDataset` (C++, no Python per line:
    `TextLineReader` through `from_generator` tops out near 2k lines/s here),
    stripped, and blank lines dropped as separators. UTF-8 is checked in the
    graph: an invalid line stops the pipeline with an InvalidArgumentError
    whose message reads ``<path>:<line>: invalid UTF-8 ...``. An empty file
    raises `DataFormatError` when the dataset is built.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError(f"No text files given for language {language!r}.")
    datasets = []
    for path in paths:
        if first_text_line_number(path) is None:
            raise DataFormatError(
                "empty file: no text line",
                path=path,
                language=language,
                expected="one sentence or document per line",
            )
        lines = tf.data.TextLineDataset(
            path, compression_type="GZIP" if path.endswith(".gz") else None
        )
        # Checked and cleaned in blocks of lines: per-line map and filter
        # stages cost ~100 us a line; in blocks the reader is >10x faster.
        datasets.append(
            lines.enumerate(start=1)
            .batch(_BLOCK)
            .map(_checked_block(path, language), num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch()
        )
    dataset = datasets[0]
    for other in datasets[1:]:
        dataset = dataset.concatenate(other)
    return dataset


_BLANK = r"[\s\p{Z}\p{Cc}]*"
_BLOCK = 512


def _checked_block(path: str, language: str):
    def invalid(line_numbers, bad):
        first = tf.boolean_mask(line_numbers, bad)[0]
        message = tf.strings.join(
            [
                path,
                ":",
                tf.strings.as_string(first),
                f": invalid UTF-8 (field text, language '{language}'); expected UTF-8 text",
            ]
        )
        check = tf.debugging.Assert(False, [message], name="check_utf8")
        with tf.control_dependencies([check]):
            return tf.identity(bad)

    @tf.autograph.experimental.do_not_convert
    def check(line_numbers, lines):
        # Invalid bytes become U+FFFD when transcoding with errors="replace",
        # so a valid line is exactly one that comes back unchanged.
        repaired = tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="replace")
        bad = tf.not_equal(repaired, lines)
        bad = tf.cond(
            tf.reduce_any(bad), lambda: invalid(line_numbers, bad), lambda: tf.identity(bad)
        )
        with tf.control_dependencies([bad]):
            lines = tf.strings.strip(lines)
        return tf.boolean_mask(lines, tf.logical_not(tf.strings.regex_full_match(lines, _BLANK)))

    return check
