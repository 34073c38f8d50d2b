"""Held-out batches per language: checked, ordered, and made one-language batches.

The diagnostics take ``{language: batch}`` or ``{language: [batch, ...]}``
where a language is a code of the model's `LanguageVocabulary` or its index,
and a batch is the dict a model takes (``token_ids``, ``padding_mask``,
``language_ids``, and for the default masked-LM loss ``mask_positions``,
``mask_ids`` and optionally ``mask_weights``). Every example of a language's
batches must carry that language's id: a batch labelled ``sw`` that holds
``en`` examples is almost always a wiring mistake, and would silently measure
the wrong thing. Batches may leave ``language_ids`` out; it is then filled in.

``language_ids`` is replaced by the scalar id, which marks a one-language
batch: the model slices that language's LS weights once instead of gathering
them per example (same function, less work).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LanguageBatches:
    """One language's held-out batches, ready for the model.

    Attributes:
        code: the language code.
        index: its index in the model's language vocabulary.
        batches: the batches, with a scalar ``language_ids``.
    """

    code: str
    index: int
    batches: tuple


def _language_of(vocabulary, key, where):
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"{where}: language key {key!r} is neither a code nor an index.")
    if isinstance(key, (int, np.integer)):
        index = int(key)
        if not 0 <= index < len(vocabulary):
            raise KeyError(
                f"{where}: language index {index} is out of range for the model's "
                f"{len(vocabulary)} languages {list(vocabulary.codes)}."
            )
        return vocabulary.code(index), index
    if isinstance(key, str):
        if key not in vocabulary:
            raise KeyError(f"{where}: language {key!r} is not one of the model's languages {list(vocabulary.codes)}.")
        return key, vocabulary.index(key)
    raise TypeError(f"{where}: language key {key!r} is neither a code nor an index.")


def _one_language_batch(batch, code, index, where):
    if not isinstance(batch, Mapping):
        raise TypeError(f"{where}: a batch of language {code!r} must be a dict of tensors, got {type(batch).__name__}.")
    if "token_ids" not in batch:
        raise KeyError(f"{where}: the batch of language {code!r} has no 'token_ids' (keys: {sorted(batch)}).")
    prepared = {key: tf.convert_to_tensor(value) for key, value in batch.items()}
    if "language_ids" in prepared:
        ids = np.unique(np.asarray(prepared["language_ids"]))
        if ids.size and not np.array_equal(ids, [index]):
            raise ValueError(
                f"{where}: the batch given for language {code!r} (index {index}) holds "
                f"language ids {ids.tolist()}; every example must be of that language."
            )
    prepared["language_ids"] = tf.constant(index, tf.int32)
    return prepared


def resolve_language_batches(vocabulary, batches_by_language, where: str = "batches_by_language") -> tuple:
    """Checks ``{language: batch or [batches]}`` and returns a tuple of `LanguageBatches`.

    The order is the mapping's order (it is the order of the matrices' rows).

    Raises:
        ValueError / KeyError / TypeError naming `where` and the language when a
        language is unknown or repeated, a batch is missing or malformed, or a
        batch holds another language's examples.
    """
    if not isinstance(batches_by_language, Mapping) or not batches_by_language:
        raise ValueError(f"{where}: expected a non-empty dict {{language: batch or [batches]}}.")
    resolved, seen = [], {}
    for key, batches in batches_by_language.items():
        code, index = _language_of(vocabulary, key, where)
        if index in seen:
            raise ValueError(f"{where}: language {code!r} is given twice (as {seen[index]!r} and {key!r}).")
        seen[index] = key
        if isinstance(batches, Mapping):
            batches = [batches]
        batches = list(batches)
        if not batches:
            raise ValueError(f"{where}: language {code!r} has no batch.")
        prepared = tuple(
            _one_language_batch(batch, code, index, f"{where}[{key!r}][{position}]")
            for position, batch in enumerate(batches)
        )
        resolved.append(LanguageBatches(code=code, index=index, batches=prepared))
    return tuple(resolved)
