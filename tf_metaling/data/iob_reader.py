"""Streaming reader for IOB-tagged NER files (WikiAnn / PAN-X and CoNLL layouts).

Two layouts, one sentence per block, blank lines between sentences:

- ``"panx"`` (XTREME's WikiAnn/PAN-X): ``lang:token<TAB>tag``. The language
  prefix of every line must be the reader's language.
- ``"conll"`` (CoNLL-2002/2003): whitespace-separated columns, the token first
  and the tag last (``EU NNP B-NP B-ORG``); every line of a file has the same
  number of columns; ``-DOCSTART-`` lines mark documents and are counted, not
  read as words.

Tags must look like ``O`` or ``B-TYPE`` / ``I-TYPE`` (also ``E-``/``S-`` for
IOBES). Problems raise `DataFormatError` with file:line, the column, the
language and what was expected; ``on_error="skip"`` skips the sentence and
counts it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

from tf_metaling.data.text_reader import decode_line, open_binary
from tf_metaling.data.token_tagging import TaggedSentence
from tf_metaling.errors import DataFormatError, ErrorPolicy

IOB_LAYOUTS = ("panx", "conll")
_TAG = re.compile(r"^(O|[BIES]-[^\s]+)$")


class IobReader:
    """Iterates `TaggedSentence`s of an IOB NER file.

    Args:
        path: the file (``.gz`` is decompressed).
        language: language code of the file.
        layout: ``"panx"`` (default) or ``"conll"``.
        label_names: if given, every tag must be one of them.
        languages: optional `LanguageVocabulary` that must contain `language`.
        on_error: ``"raise"`` (default) or ``"skip"`` (skip the sentence).
    """

    def __init__(
        self,
        path,
        language: str,
        layout: str = "panx",
        label_names: Sequence[str] | None = None,
        languages=None,
        on_error: str = "raise",
    ):
        self.path = os.fspath(path)
        if layout not in IOB_LAYOUTS:
            raise ValueError(f"layout={layout!r}: expected one of {IOB_LAYOUTS}.")
        if languages is not None:
            languages.check([language], where=self.path)
        self.language = language
        self.layout = layout
        self._label_list = None if label_names is None else list(label_names)
        self.label_names = None if label_names is None else frozenset(label_names)
        self._policy = ErrorPolicy(on_error, source=self.path)
        self._columns = None  # CoNLL layout: column count of the first line
        self.stats = {"sentences": 0, "words": 0, "documents": 0}

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
        block = []
        any_line = False
        with open_binary(self.path) as f:
            for line_number, raw in enumerate(f, start=1):
                any_line = True
                try:
                    line = decode_line(raw, self.path, line_number, self.language, "line")
                except DataFormatError as error:
                    self._policy.handle(error)
                    block.append((line_number, None))
                    continue
                line = line.rstrip("\r\n")
                if self.layout == "conll" and line.startswith("-DOCSTART-"):
                    self.stats["documents"] += 1
                    continue
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
            raise self._error("empty file: no sentence", None, expected="IOB-tagged sentences")
        self.report.log()

    def _parse_or_skip(self, block):
        if any(line is None for _, line in block):
            return None
        try:
            return self._parse(block)
        except DataFormatError as error:
            self._policy.handle(error)
            return None

    def _split(self, line_number, line):
        if self.layout == "panx":
            columns = line.split("\t")
            if len(columns) != 2:
                raise self._error(
                    f"wrong number of columns ({len(columns)})",
                    line_number,
                    expected="2 tab-separated columns: lang:token<TAB>tag",
                    found=line,
                )
            prefixed, tag = columns
            prefix, sep, token = prefixed.partition(":")
            if not sep:
                raise self._error(
                    "missing language prefix",
                    line_number,
                    field="token",
                    expected=f"'{self.language}:token'",
                    found=prefixed,
                )
            if prefix != self.language:
                raise self._error(
                    f"language prefix {prefix!r} does not match the file's language",
                    line_number,
                    field="token",
                    expected=f"'{self.language}:token'",
                    found=prefixed,
                )
            return token, tag
        columns = line.split()
        if len(columns) < 2:
            raise self._error(
                f"wrong number of columns ({len(columns)})",
                line_number,
                expected="at least 2 whitespace-separated columns: token ... tag",
                found=line,
            )
        if self._columns is None:
            self._columns = (len(columns), line_number)
        elif len(columns) != self._columns[0]:
            raise self._error(
                f"wrong number of columns ({len(columns)})",
                line_number,
                expected=f"{self._columns[0]} columns like line {self._columns[1]}",
                found=line,
            )
        return columns[0], columns[-1]

    def _parse(self, block) -> TaggedSentence:
        words, tags = [], []
        for line_number, line in block:
            token, tag = self._split(line_number, line)
            if not token.strip():
                raise self._error("empty token", line_number, field="token", expected="a word")
            if not _TAG.match(tag):
                raise self._error(
                    "malformed tag",
                    line_number,
                    field="tag",
                    expected="O, B-TYPE, I-TYPE (or E-/S- for IOBES)",
                    found=tag,
                )
            if self.label_names is not None and tag not in self.label_names:
                raise self._error(
                    "unknown tag",
                    line_number,
                    field="tag",
                    expected=f"one of {self._label_list}",
                    found=tag,
                )
            words.append(token)
            tags.append(tag)
        self.stats["sentences"] += 1
        self.stats["words"] += len(words)
        return TaggedSentence(
            words=tuple(words),
            tags=tuple(tags),
            language=self.language,
            source=f"{self.path}:{block[0][0]}",
        )
