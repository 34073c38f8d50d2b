"""The language vocabulary: one object that maps language codes to indices.

Every part of the project that needs to know "which language is this" uses one
`LanguageVocabulary`: the data pipelines tag examples with its indices, the
encoder's language-specific layers are stacked in its order, the trainers sample
its languages, and exported SavedModels look up the per-example `language`
string in the graph with `lookup`. Index `i` of every stacked language weight
belongs to `codes[i]`; growing the vocabulary only appends, so existing indices
never move.

Unknown languages follow an explicit policy: ``"error"`` raises
`tf.errors.InvalidArgumentError` naming the offending code(s) (in eager mode, in
a `tf.function` and inside an exported SavedModel alike), ``"default"`` routes
them to `default_language`.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

UNKNOWN_POLICIES = ("error", "default")
_CODE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


class UnknownLanguageError(KeyError, ValueError):
    """A language code that is not in the vocabulary (Python-side lookups)."""

    def __str__(self):  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class LanguageVocabulary:
    """Language codes <-> indices, with an in-graph lookup and an unknown policy.

    Args:
        codes: language codes in index order, e.g. ``["en", "fr", "sw"]``. Codes
            are case-sensitive, unique, and look like ``[A-Za-z][A-Za-z0-9_-]*``.
        unknown: ``"error"`` (default) or ``"default"``.
        default_language: the code unknown languages map to; required when
            ``unknown="default"`` and must be one of `codes`.

    Example:
    >>> vocab = LanguageVocabulary(["en", "fr", "sw"])
    >>> vocab.index("sw")
    2
    >>> vocab.lookup(tf.constant(["fr", "en"])).numpy().tolist()
    [1, 0]
    """

    def __init__(
        self,
        codes: Sequence[str],
        unknown: str = "error",
        default_language: str | None = None,
    ):
        codes = tuple(codes)
        if not codes:
            raise ValueError("LanguageVocabulary needs at least one language code.")
        for position, code in enumerate(codes):
            if not isinstance(code, str) or not _CODE_PATTERN.match(code):
                raise ValueError(
                    f"Invalid language code {code!r} at position {position}: expected "
                    "a string matching [A-Za-z][A-Za-z0-9_-]* (at most 32 characters)."
                )
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"Duplicate language codes: {duplicates}.")
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(
                f"unknown={unknown!r}: expected one of {UNKNOWN_POLICIES}."
            )
        if unknown == "default":
            if default_language is None:
                raise ValueError('unknown="default" needs default_language.')
            if default_language not in codes:
                raise ValueError(
                    f"default_language={default_language!r} is not one of {list(codes)}."
                )
        elif default_language is not None:
            raise ValueError(
                'default_language is only used with unknown="default"; '
                f"got unknown={unknown!r}."
            )
        self.codes = codes
        self.unknown = unknown
        self.default_language = default_language
        self._index = {code: i for i, code in enumerate(codes)}

    # ------------------------------------------------------------------ Python side
    def __len__(self) -> int:
        return len(self.codes)

    def __iter__(self):
        return iter(self.codes)

    def __contains__(self, code) -> bool:
        return code in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, LanguageVocabulary) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((self.codes, self.unknown, self.default_language))

    def __repr__(self) -> str:
        extra = f", default_language={self.default_language!r}" if self.unknown == "default" else ""
        return f"LanguageVocabulary({list(self.codes)!r}, unknown={self.unknown!r}{extra})"

    @property
    def size(self) -> int:
        return len(self.codes)

    def index(self, code: str) -> int:
        """The index of `code`, following the unknown-language policy."""
        if code in self._index:
            return self._index[code]
        if self.unknown == "default":
            return self._index[self.default_language]
        raise UnknownLanguageError(
            f"Unknown language code {code!r}; this vocabulary has {list(self.codes)}."
        )

    def indices(self, codes: Iterable[str]) -> list[int]:
        return [self.index(code) for code in codes]

    def code(self, index: int) -> str:
        index = int(index)
        if not 0 <= index < len(self.codes):
            raise IndexError(
                f"Language index {index} is out of range for {len(self.codes)} languages."
            )
        return self.codes[index]

    def check(self, codes: Iterable[str], where: str = "") -> None:
        """Raises if any code is unknown, regardless of policy (for configs and files)."""
        missing = [c for c in codes if c not in self._index]
        if missing:
            place = f" in {where}" if where else ""
            raise UnknownLanguageError(
                f"Unknown language code(s) {missing}{place}; "
                f"this vocabulary has {list(self.codes)}."
            )

    def extend(self, new_codes: Iterable[str]) -> "LanguageVocabulary":
        """A new vocabulary with `new_codes` appended; existing indices are unchanged."""
        return LanguageVocabulary(
            self.codes + tuple(new_codes), self.unknown, self.default_language
        )

    # ------------------------------------------------------------------ graph side
    def lookup(self, codes: tf.Tensor) -> tf.Tensor:
        """Maps a string tensor of any shape to int32 language ids, in the graph.

        Uses only core TensorFlow ops (Equal, ArgMax, Assert), so it runs inside
        any stock TF Serving. With ``unknown="error"`` it raises
        `tf.errors.InvalidArgumentError` whose message names the unknown codes.
        """
        codes = tf.convert_to_tensor(codes, dtype=tf.string)
        known = tf.constant(self.codes, dtype=tf.string)
        # [..., L] comparison: L is small, and this needs no table resource to
        # initialise, which keeps exported signatures simple.
        matches = tf.equal(tf.expand_dims(codes, -1), known)
        found = tf.reduce_any(matches, axis=-1)
        ids = tf.cast(tf.argmax(tf.cast(matches, tf.int32), axis=-1), tf.int32)
        if self.unknown == "default":
            default = tf.constant(self._index[self.default_language], tf.int32)
            return tf.where(found, ids, default)
        unknown_codes = tf.boolean_mask(tf.reshape(codes, [-1]), tf.logical_not(tf.reshape(found, [-1])))
        message = tf.strings.join(
            [
                "Unknown language code(s): ",
                tf.strings.reduce_join(tf.strings.join(["'", unknown_codes, "'"]), separator=", "),
                "; known languages: ",
                ", ".join(self.codes),
            ]
        )
        check = tf.debugging.Assert(tf.reduce_all(found), [message], name="check_language_codes")
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def codes_of(self, ids) -> np.ndarray:
        """Inverse of `lookup` for numpy/eager ids: an array of code strings."""
        ids = np.asarray(ids)
        table = np.asarray(self.codes, dtype=object)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.codes)):
            raise IndexError(f"Language ids out of range [0, {len(self.codes)}): {ids}")
        return table[ids]

    # ------------------------------------------------------------------ serialization
    def get_config(self) -> dict:
        return {
            "codes": list(self.codes),
            "unknown": self.unknown,
            "default_language": self.default_language,
        }

    @classmethod
    def from_config(cls, config: dict) -> "LanguageVocabulary":
        return cls(**config)

    def to_json(self) -> str:
        return json.dumps(self.get_config())

    @classmethod
    def from_json(cls, text: str) -> "LanguageVocabulary":
        return cls.from_config(json.loads(text))


def as_vocabulary(languages) -> LanguageVocabulary:
    """Accepts a LanguageVocabulary, its config dict, or a sequence of codes."""
    if isinstance(languages, LanguageVocabulary):
        return languages
    if isinstance(languages, dict):
        return LanguageVocabulary.from_config(languages)
    if isinstance(languages, str):
        return LanguageVocabulary([c.strip() for c in languages.split(",") if c.strip()])
    return LanguageVocabulary(list(languages))
