"""What every tokenizer offers: `Tokenizer`, the base of the WordPiece and SentencePiece tokenizers.

A tokenizer turns strings into the model's inputs inside the TensorFlow graph
(so the same object feeds `tf.data`, runs in `tf.function` and ships inside
exported SavedModels), knows the ids of its special tokens, and saves itself
to one file that its class loads back. Code that packs, masks, trains or
serves text asks the tokenizer for these and never for its class: a
model_dir keeps the tokenizer under its kind's `file_name`, and
`tf_metaling.checkpoints` loads it by that name.
"""

from __future__ import annotations

import abc
import os
from typing import ClassVar

import numpy as np
import tensorflow as tf


class Tokenizer(tf.Module, abc.ABC):
    """A subword tokenizer in the TensorFlow graph.

    Attributes:
        file_name: the name a model_dir keeps this kind of tokenizer under.
        file_suffixes: other file names this kind is recognised by (`reads_file`).
        pad_id, unk_id, cls_id, sep_id, mask_id: the ids of the special tokens
            (padding, unknown, sequence start, separator / end, mask).

    Subclasses set ``self._vocab`` (the tokens in id order, a tuple) and
    ``self._vocab_tensor`` (the same as a string tensor) and implement the
    abstract methods; `encode` and `id_to_token` come with the base.
    """

    file_name: ClassVar[str]
    file_suffixes: ClassVar[tuple[str, ...]] = ()
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int

    # ------------------------------------------------------------ files
    @classmethod
    def reads_file(cls, path) -> bool:
        """Whether `path` is named like a file of this kind (`file_name` or one of `file_suffixes`)."""
        name = os.path.basename(os.fspath(path))
        return name == cls.file_name or name.endswith(cls.file_suffixes)

    @classmethod
    @abc.abstractmethod
    def load(cls, path) -> Tokenizer:
        """The tokenizer saved at `path` by `save`."""

    @abc.abstractmethod
    def save(self, path) -> str:
        """Writes the tokenizer to `path` (atomically); returns the path."""

    # ------------------------------------------------------------ vocabulary
    @property
    def vocab(self) -> tuple[str, ...]:
        """The tokens in id order."""
        return self._vocab

    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def id_to_token(self, ids):
        """Token strings for ids: a Python str for an int, else a string tensor."""
        if isinstance(ids, (int, np.integer)):
            if not 0 <= int(ids) < len(self._vocab):
                raise IndexError(f"Token id {ids} is out of range [0, {len(self._vocab)}).")
            return self._vocab[int(ids)]
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(tf.gather, self._vocab_tensor, ids)
        return tf.gather(self._vocab_tensor, ids)

    # ------------------------------------------------------------ in-graph ops
    @abc.abstractmethod
    def tokenize(self, strings) -> tf.RaggedTensor:
        """[B] strings -> int32 [B, (pieces)] (a scalar string gives [pieces])."""

    @abc.abstractmethod
    def tokenize_pretokenized(self, words) -> tf.RaggedTensor:
        """Already split words [B, (words)] -> int32 [B, (words), (pieces)], at least one piece per word."""

    @abc.abstractmethod
    def pack(self, pieces: tf.RaggedTensor, sequence_length: int) -> dict:
        """[B, (pieces)] -> one sequence per row, truncated and padded to T: ``token_ids``, ``padding_mask``."""

    def encode(self, strings, sequence_length: int) -> dict:
        """[B] strings -> ``token_ids``, ``padding_mask``: int32 [B, T]."""
        return self.pack(self.tokenize(strings), sequence_length)

    @abc.abstractmethod
    def encode_pairs(self, first, second, sequence_length: int) -> dict:
        """Two texts per row -> ``token_ids``, ``padding_mask``, ``segment_ids``: int32 [B, T]."""

    @abc.abstractmethod
    def detokenize(self, ids) -> tf.Tensor:
        """Ids [B, T] or [B, (T)] -> [B] strings, without padding and sequence markers."""

    # ------------------------------------------------------------ shared by the kinds
    def _at_least_one_piece(self, words: tf.RaggedTensor, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        """Word pieces [N, (pieces)] of ``words.flat_values`` -> [B, (words), (pieces)].

        A word that gives no piece (it normalises to nothing) gets ``unk_id``,
        so that word-level labels can always be attached.
        """
        empty = tf.cast(tf.equal(pieces.row_lengths(), 0), pieces.row_splits.dtype)
        filler = tf.cast(tf.ragged.range(empty) * 0 + self.unk_id, tf.int32)
        return words.with_flat_values(tf.concat([pieces, filler], axis=1))

    def _model_inputs(self, ids: tf.RaggedTensor, sequence_length: int) -> dict:
        """Packed ids [B, (T)] -> ``token_ids`` (padded with ``pad_id``), ``padding_mask``: int32 [B, T]."""
        ids = tf.cast(ids, tf.int32)
        return {
            "token_ids": ids.to_tensor(default_value=self.pad_id, shape=[None, sequence_length]),
            "padding_mask": tf.sequence_mask(ids.row_lengths(), sequence_length, dtype=tf.int32),
        }


def check_sequence_length(sequence_length, minimum: int) -> None:
    if not isinstance(sequence_length, (int, np.integer)) or sequence_length < minimum:
        raise ValueError(f"sequence_length={sequence_length!r}: expected an int >= {minimum}.")


def trim_pair(first: tf.RaggedTensor, second: tf.RaggedTensor, budget: int) -> tuple:
    """Cuts two [B, (pieces)] sides to at most `budget` pieces together, the longer side first.

    Each side keeps at least half of the budget if it needs it.
    """
    first_lengths, second_lengths = first.row_lengths(), second.row_lengths()
    half = tf.constant(budget // 2, first_lengths.dtype)
    keep_first = tf.minimum(first_lengths, tf.maximum(half, budget - second_lengths))
    keep_second = tf.minimum(second_lengths, budget - keep_first)
    return _truncate_rows(first, keep_first), _truncate_rows(second, keep_second)


def _truncate_rows(rt: tf.RaggedTensor, lengths: tf.Tensor) -> tf.RaggedTensor:
    """Keeps the first lengths[i] items of row i (lengths <= row lengths)."""
    keep = tf.ragged.range(rt.row_lengths()) < tf.expand_dims(lengths, 1)
    return tf.ragged.boolean_mask(rt, keep)
