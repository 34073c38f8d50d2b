"""Streaming reader for XNLI-style TSV files (natural language inference).

Accepts the XNLI 1.0 dev/test layout (columns ``language``, ``gold_label``,
``sentence1``, ``sentence2`` among others) and the XNLI-MT / MultiNLI train
layout (``premise``, ``hypo``, ``label``): the header line names the columns.
Fields are split on tabs with no quoting (quotes are text in these files).
Labels are ``entailment``, ``neutral``, ``contradiction`` (``contradictory``,
used by XNLI-MT, is read as ``contradiction``).

A row with the wrong number of fields, an empty sentence, an unknown label or
an unknown language raises `DataFormatError` with file:line; rows of
languages outside `keep_languages` are counted in ``stats["other_language"]``
(an explicit filter, not a silent drop).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from tf_metaling.data.sentence_classification import ClassificationExample
from tf_metaling.data.text_reader import decode_line, open_binary
from tf_metaling.errors import DataFormatError, ErrorPolicy

NLI_LABELS = ("entailment", "neutral", "contradiction")
_LABEL_ALIASES = {"contradictory": "contradiction"}
_COLUMN_ALIASES = {
    "premise": ("premise", "sentence1"),
    "hypothesis": ("hypothesis", "hypo", "sentence2"),
    "label": ("label", "gold_label"),
    "language": ("language", "lang"),
}


class NliReader:
    """Iterates `ClassificationExample` pairs of an XNLI-style TSV file.

    Args:
        path: the file (``.gz`` is decompressed); first line is the header.
        language: the language of every row when the file has no language
            column (XNLI-MT); ignored otherwise.
        keep_languages: with a language column, only these languages are read.
        languages: optional `LanguageVocabulary`; read languages must be in it.
        on_error: ``"raise"`` (default) or ``"skip"``.
    """

    def __init__(
        self,
        path,
        language: str | None = None,
        keep_languages: Sequence[str] | None = None,
        languages=None,
        on_error: str = "raise",
    ):
        self.path = os.fspath(path)
        self.language = language
        self.keep_languages = None if keep_languages is None else set(keep_languages)
        self.languages = languages
        self._policy = ErrorPolicy(on_error, source=self.path)
        self.stats = {"rows": 0, "examples": 0, "other_language": 0}

    @property
    def report(self):
        return self._policy.report

    def _columns(self, header: list[str], line_number: int) -> dict:
        lowered = [h.strip().lower() for h in header]
        found = {}
        for name, aliases in _COLUMN_ALIASES.items():
            for alias in aliases:
                if alias in lowered:
                    found[name] = lowered.index(alias)
                    break
        missing = [n for n in ("premise", "hypothesis", "label") if n not in found]
        if missing:
            raise DataFormatError(
                f"header lacks column(s) {missing}",
                path=self.path,
                line=line_number,
                field="header",
                expected="columns premise/sentence1, hypo/sentence2, label/gold_label",
                found="\t".join(header),
            )
        if "language" not in found and self.language is None:
            raise DataFormatError(
                "no language column and no language given",
                path=self.path,
                line=line_number,
                field="header",
                expected="a 'language' column, or NliReader(language=...)",
            )
        return found

    def __iter__(self) -> Iterator[ClassificationExample]:
        columns = None
        width = 0
        with open_binary(self.path) as f:
            for line_number, raw in enumerate(f, start=1):
                try:
                    line = decode_line(raw, self.path, line_number, self.language, "line")
                except DataFormatError as error:
                    if columns is None:
                        raise
                    self._policy.handle(error)
                    continue
                fields = line.rstrip("\r\n").split("\t")
                if columns is None:
                    columns = self._columns(fields, line_number)
                    width = len(fields)
                    continue
                if not line.strip():
                    continue
                self.stats["rows"] += 1
                try:
                    example = self._example(fields, width, columns, line_number)
                except DataFormatError as error:
                    self._policy.handle(error)
                    continue
                if example is not None:
                    self.stats["examples"] += 1
                    yield example
        if columns is None or (self.stats["rows"] == 0):
            raise DataFormatError(
                "empty file: no data row", path=self.path, expected="a header and data rows"
            )
        self.report.log()

    def _example(self, fields, width, columns, line_number):
        if len(fields) != width:
            raise DataFormatError(
                f"wrong number of fields ({len(fields)})",
                path=self.path,
                line=line_number,
                language=self.language,
                expected=f"{width} tab-separated fields as in the header",
            )
        if "language" in columns:
            language = fields[columns["language"]].strip()
        else:
            language = self.language
        if self.keep_languages is not None and language not in self.keep_languages:
            self.stats["other_language"] += 1
            return None
        if self.languages is not None:
            self.languages.check([language], where=f"{self.path}:{line_number}")
        premise = fields[columns["premise"]].strip()
        hypothesis = fields[columns["hypothesis"]].strip()
        for name, value in (("premise", premise), ("hypothesis", hypothesis)):
            if not value:
                raise DataFormatError(
                    f"empty {name}",
                    path=self.path,
                    line=line_number,
                    field=name,
                    language=language,
                    expected="a sentence",
                )
        label = fields[columns["label"]].strip()
        label = _LABEL_ALIASES.get(label, label)
        if label not in NLI_LABELS:
            raise DataFormatError(
                "unknown label",
                path=self.path,
                line=line_number,
                field="label",
                language=language,
                expected=f"one of {list(NLI_LABELS)}",
                found=label,
            )
        return ClassificationExample(
            text=premise,
            text_pair=hypothesis,
            label=label,
            language=language,
            source=f"{self.path}:{line_number}",
        )
