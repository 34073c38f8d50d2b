"""Sentence (and sentence-pair) classification examples and their batches.

Batches hold ``token_ids``, ``padding_mask``, ``language_ids`` and
``labels`` int32 [B]; pair tasks (XNLI) add ``segment_ids`` [B, T]. The same
labels exist in every language, so a model trained on English can be
evaluated zero-shot on the others.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tf_metaling.errors import DataFormatError
from tf_metaling.languages import as_vocabulary

CLASSIFICATION_KEYS = ("token_ids", "padding_mask", "language_ids", "labels")


@dataclasses.dataclass(frozen=True)
class ClassificationExample:
    """One text (or text pair) with a label name, in one language."""

    text: str
    label: str
    language: str
    text_pair: str | None = None
    source: str = ""


def label_id(example: ClassificationExample, label_names: Sequence[str]) -> int:
    try:
        return list(label_names).index(example.label)
    except ValueError:
        path, _, line = example.source.rpartition(":")
        raise DataFormatError(
            "unknown label",
            path=path or None,
            line=int(line) if line.isdigit() else None,
            field="label",
            language=example.language,
            expected=f"one of {list(label_names)}",
            found=example.label,
        ) from None


def classification_dataset(
    examples: Iterable[ClassificationExample],
    tokenizer,
    languages,
    label_names: Sequence[str],
    sequence_length: int,
    batch_size: int,
    pairs: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``token_ids, padding_mask, language_ids, labels`` (+ ``segment_ids``).

    With ``pairs=True`` every example must have `text_pair` (and none may
    have it otherwise). A list (any sequence) of examples is checked and turned into tensors
    once, so the pipeline runs no Python and works under every `tf.distribute`
    strategy; any other iterable is streamed through a Python generator and
    re-iterated on every pass (not for TPUs or several workers).
    """
    languages = as_vocabulary(languages)
    label_names = tuple(label_names)

    def row(example):
        languages.check([example.language], where=example.source or "example")
        if (example.text_pair is not None) != pairs:
            raise DataFormatError(
                "text pair presence does not match the task",
                path=example.source or None,
                field="text_pair",
                language=example.language,
                expected="a text pair" if pairs else "a single text",
            )
        return (
            example.text,
            example.text_pair if pairs else "",
            np.int32(languages.index(example.language)),
            np.int32(label_id(example, label_names)),
        )

    if isinstance(examples, collections.abc.Sequence):
        # Examples already in memory become tensors: no Python runs inside the pipeline,
        # so it works under every tf.distribute strategy (a Python generator does not on
        # TPUs or across workers, and a prefetching one can deadlock when its iterator is
        # collected while another thread holds the GIL).
        rows = [row(example) for example in examples]
        columns = list(zip(*rows)) if rows else ([], [], [], [])
        dataset = tf.data.Dataset.from_tensor_slices(
            tuple(tf.constant(list(column), dtype) for column, dtype in
                  zip(columns, (tf.string, tf.string, tf.int32, tf.int32)))
        )
    else:

        def generate():
            for example in examples:
                yield row(example)

        signature = (
            tf.TensorSpec([], tf.string),
            tf.TensorSpec([], tf.string),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.int32),
        )
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    @tf.autograph.experimental.do_not_convert
    def encode(texts, text_pairs, language_ids, labels):
        if pairs:
            inputs = tokenizer.encode_pairs(texts, text_pairs, sequence_length)
        else:
            inputs = tokenizer.encode(texts, sequence_length)
        inputs["language_ids"] = language_ids
        inputs["labels"] = labels
        return inputs

    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
