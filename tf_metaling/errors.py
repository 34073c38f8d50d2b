"""Errors and skip reports for reading user data.

Every reader in `tf_metaling.data`, the corpora and the tokenizers' file
readers report bad input the same way: a `DataFormatError` that names the file
and line, the field, the language and what was expected, so a user can open
the file at the right place. Readers that
offer a skip policy take ``on_error="skip"`` explicitly and count what they
skipped in a `SkipReport`; the default is ``on_error="raise"``, so nothing is
dropped unless the user asked for it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

ON_ERROR_POLICIES = ("raise", "skip")
_logger = logging.getLogger(__name__)


class DataFormatError(ValueError):
    """Malformed input, located as precisely as the reader can.

    Attributes mirror the message: `path`, `line` (1-based), `field`,
    `language`, `expected` and `found`; any of them may be None.
    """

    def __init__(
        self,
        message: str,
        *,
        path=None,
        line: int | None = None,
        field: str | None = None,
        language: str | None = None,
        expected: str | None = None,
        found=None,
    ):
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        self.language = language
        self.expected = expected
        self.found = found
        super().__init__(self._format())

    @property
    def location(self) -> str:
        if self.path is None:
            return "<input>" if self.line is None else f"<input>:{self.line}"
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def _format(self) -> str:
        parts = [f"{self.location}: {self.reason}"]
        details = []
        if self.field is not None:
            details.append(f"field {self.field}")
        if self.language is not None:
            details.append(f"language {self.language!r}")
        if details:
            parts.append(f" ({', '.join(details)})")
        if self.expected is not None:
            parts.append(f"; expected {self.expected}")
        if self.found is not None:
            found = self.found
            if isinstance(found, str) and len(found) > 120:
                found = found[:117] + "..."
            parts.append(f"; found {found!r}")
        return "".join(parts)


@dataclasses.dataclass
class SkipReport:
    """What a reader skipped under ``on_error="skip"``: counts per reason.

    `examples` keeps the first few errors (with their file:line) so the report
    can be inspected without re-reading the file.
    """

    source: str = ""
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: list = dataclasses.field(default_factory=list)
    max_examples: int = 5

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, error: DataFormatError) -> None:
        self.counts[error.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(error))

    def summary(self) -> str:
        if not self.total:
            return f"{self.source}: nothing skipped"
        reasons = ", ".join(f"{n} x {reason}" for reason, n in self.counts.most_common())
        return f"{self.source}: skipped {self.total} ({reasons})"

    def log(self) -> None:
        if self.total:
            _logger.warning("%s", self.summary())


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR_POLICIES:
        raise ValueError(f"on_error={on_error!r}: expected one of {ON_ERROR_POLICIES}.")
    return on_error


class ErrorPolicy:
    """Raises or records a `DataFormatError` according to ``on_error``."""

    def __init__(self, on_error: str, source: str):
        self.on_error = check_on_error(on_error)
        self.report = SkipReport(source=source)

    def handle(self, error: DataFormatError) -> None:
        if self.on_error == "raise":
            raise error
        self.report.add(error)
