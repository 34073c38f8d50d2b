"""Streaming reader for CoNLL-U files (Universal Dependencies), for POS tagging.

Format (https://universaldependencies.org/format.html): sentences separated by
blank lines; ``#`` comment lines before the word lines (``# sent_id = ``,
``# text = `` are kept); word lines have exactly 10 tab-separated columns
``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC``. Besides words
(integer IDs 1, 2, ...), a sentence may hold multiword-token ranges (``3-4``,
the surface form of words 3 and 4) and empty nodes (``5.1``, enhanced
dependencies only). Tagging is over syntactic words, as in XTREME's UD POS
task, so ranges and empty nodes are checked and then left out.

Every structural problem raises `DataFormatError` with file:line, the column
and what was expected: wrong column count, bad or non-consecutive IDs, a range
that does not start at the next word, a missing label, a comment between word
lines, a sentence without words, invalid UTF-8, an empty file. With
``on_error="skip"`` the whole offending sentence is skipped and counted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

from tf_metaling.data.text_reader import decode_line, open_binary
from tf_metaling.data.token_tagging import TaggedSentence
from tf_metaling.errors import DataFormatError, ErrorPolicy

CONLLU_COLUMNS = (
    "ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC",
)  # fmt: skip
_WORD_ID = re.compile(r"^[1-9][0-9]*$")
_RANGE_ID = re.compile(r"^([1-9][0-9]*)-([1-9][0-9]*)$")
_EMPTY_NODE_ID = re.compile(r"^(0|[1-9][0-9]*)\.[1-9][0-9]*$")


class ConlluReader:
    """Iterates `TaggedSentence`s of a CoNLL-U file.

    Args:
        path: the file (``.gz`` is decompressed).
        language: language code of the file.
        label_field: the column used as the tag: ``"UPOS"`` (default),
            ``"XPOS"`` or ``"DEPREL"``.
        label_names: if given, every tag must be one of them.
        languages: optional `LanguageVocabulary` that must contain `language`.
        on_error: ``"raise"`` (default) or ``"skip"`` (skip the sentence).

    After iteration, `stats` counts ``sentences``, ``words``,
    ``multiword_tokens``, ``empty_nodes`` and ``comments``.
    """

    def __init__(
        self,
        path,
        language: str,
        label_field: str = "UPOS",
        label_names: Sequence[str] | None = None,
        languages=None,
        on_error: str = "raise",
    ):
        self.path = os.fspath(path)
        if label_field not in ("UPOS", "XPOS", "DEPREL"):
            raise ValueError(f"label_field={label_field!r}: expected UPOS, XPOS or DEPREL.")
        if languages is not None:
            languages.check([language], where=self.path)
        self.language = language
        self.label_field = label_field
        self._label_column = CONLLU_COLUMNS.index(label_field)
        self.label_names = None if label_names is None else frozenset(label_names)
        self._label_list = None if label_names is None else list(label_names)
        self._policy = ErrorPolicy(on_error, source=self.path)
        self.stats = dict.fromkeys(
            ("sentences", "words", "multiword_tokens", "empty_nodes", "comments"), 0
        )

    @property
    def report(self):
        return self._policy.report

    def _error(self, message, line, field=None, expected=None, found=None):
        return DataFormatError(
            message,
            path=self.path,
            line=line,
            field=field,
            language=self.language,
            expected=expected,
            found=found,
        )

    def __iter__(self) -> Iterator[TaggedSentence]:
        any_line = False
        block: list[tuple[int, str]] = []
        with open_binary(self.path) as f:
            for line_number, raw in enumerate(f, start=1):
                any_line = True
                try:
                    line = decode_line(raw, self.path, line_number, self.language, "line")
                except DataFormatError as error:
                    self._policy.handle(error)
                    block.append((line_number, None))  # poison the sentence
                    continue
                line = line.rstrip("\r\n")
                if line.strip():
                    block.append((line_number, line))
                    continue
                if block:
                    sentence = self._parse_or_skip(block)
                    block = []
                    if sentence is not None:
                        yield sentence
        if block:
            sentence = self._parse_or_skip(block)
            if sentence is not None:
                yield sentence
        if not any_line or (self.stats["sentences"] == 0 and not self.report.total):
            raise self._error("empty file: no sentence", None, expected="CoNLL-U sentences")
        self.report.log()

    def _parse_or_skip(self, block) -> TaggedSentence | None:
        if any(line is None for _, line in block):
            return None  # its decoding error is already reported
        try:
            return self._parse(block)
        except DataFormatError as error:
            self._policy.handle(error)
            return None

    def _parse(self, block) -> TaggedSentence:
        words, tags = [], []
        sentence_id = text = None
        next_id = 1
        range_end = range_line = 0
        first_word_line = None
        counts = {"multiword_tokens": 0, "empty_nodes": 0, "comments": 0}
        for line_number, line in block:
            if line.startswith("#"):
                if first_word_line is not None:
                    raise self._error(
                        "comment line between word lines",
                        line_number,
                        expected="comments only before the first word line of a sentence",
                        found=line,
                    )
                counts["comments"] += 1
                key, sep, value = line[1:].partition("=")
                if sep and key.strip() == "sent_id":
                    sentence_id = value.strip()
                elif sep and key.strip() == "text":
                    text = value.strip()
                continue
            columns = line.split("\t")
            if len(columns) != len(CONLLU_COLUMNS):
                raise self._error(
                    f"wrong number of columns ({len(columns)})",
                    line_number,
                    expected="10 tab-separated columns " + " ".join(CONLLU_COLUMNS),
                    found=line,
                )
            if first_word_line is None:
                first_word_line = line_number
            word_id = columns[0]
            if _EMPTY_NODE_ID.match(word_id):
                counts["empty_nodes"] += 1
                continue
            match = _RANGE_ID.match(word_id)
            if match:
                start, end = int(match.group(1)), int(match.group(2))
                if start != next_id or end <= start:
                    raise self._error(
                        "bad multiword token range",
                        line_number,
                        field="ID",
                        expected=f"a range {next_id}-N with N > {next_id}",
                        found=word_id,
                    )
                range_end, range_line = end, line_number
                counts["multiword_tokens"] += 1
                continue
            if not _WORD_ID.match(word_id):
                raise self._error(
                    "bad ID",
                    line_number,
                    field="ID",
                    expected="an integer word ID, a range like 3-4 or an empty node like 5.1",
                    found=word_id,
                )
            if int(word_id) != next_id:
                raise self._error(
                    "word IDs must be consecutive from 1",
                    line_number,
                    field="ID",
                    expected=str(next_id),
                    found=word_id,
                )
            form = columns[1]
            label = columns[self._label_column]
            if not form:
                raise self._error("empty word form", line_number, field="FORM", expected="a word")
            if not label or label == "_":
                raise self._error(
                    f"missing {self.label_field}",
                    line_number,
                    field=self.label_field,
                    expected="a tag",
                    found=label,
                )
            if self.label_names is not None and label not in self.label_names:
                raise self._error(
                    f"unknown {self.label_field} tag",
                    line_number,
                    field=self.label_field,
                    expected=f"one of {self._label_list}",
                    found=label,
                )
            words.append(form)
            tags.append(label)
            next_id += 1
        if not words:
            raise self._error(
                "sentence without word lines", block[0][0], expected="at least one word line"
            )
        if range_end >= next_id:
            raise self._error(
                "multiword token range extends past the last word",
                range_line,
                field="ID",
                expected=f"words up to {range_end}",
                found=str(next_id - 1),
            )
        self.stats["sentences"] += 1
        self.stats["words"] += len(words)
        for key, value in counts.items():
            self.stats[key] += value
        return TaggedSentence(
            words=tuple(words),
            tags=tuple(tags),
            language=self.language,
            source=f"{self.path}:{first_word_line}",
            sentence_id=sentence_id,
            text=text,
        )
