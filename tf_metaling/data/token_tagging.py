"""Token tagging examples (POS, NER) and their alignment to subwords.

Readers (`ConlluReader`, `IobReader`) yield `TaggedSentence`s: words with one
tag each. The encoder splits every word into subwords and puts the word's
label on its FIRST subword; the other subwords, [CLS], [SEP] and padding get
``labels = 0`` and ``label_weights = 0``. Losses must weight by
``label_weights`` (there is no -100 sentinel: every label id is a valid class
index, so the batch can feed a plain sparse cross-entropy with sample weights).

Words whose first subword falls beyond ``sequence_length - 2`` are truncated
with the sequence; `encode_tagged_words` returns their number per example as
``truncated_words`` so callers can report it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tf_metaling.errors import DataFormatError
from tf_metaling.languages import as_vocabulary

# Universal Dependencies v2 universal POS tags.
UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip

# The WikiAnn / PAN-X (XTREME) NER tag set.
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

TAGGING_KEYS = ("token_ids", "padding_mask", "language_ids", "labels", "label_weights")


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """Words with one tag each, in one language.

    `source` is ``"path:line"`` of the sentence's first word line.
    """

    words: tuple
    tags: tuple
    language: str
    source: str = ""
    sentence_id: str | None = None
    text: str | None = None

    def __post_init__(self):
        if len(self.words) != len(self.tags):
            raise ValueError(
                f"{self.source or 'sentence'}: {len(self.words)} words but {len(self.tags)} tags."
            )


def tag_ids(sentence: TaggedSentence, label_names: Sequence[str]) -> list[int]:
    """Maps tags to indices of `label_names`, naming the sentence on unknown tags."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for position, tag in enumerate(sentence.tags):
        if tag not in index:
            path, _, line = sentence.source.rpartition(":")
            raise DataFormatError(
                f"unknown tag of word {position + 1} ({sentence.words[position]!r}) "
                "of the sentence starting here",
                path=path or None,
                line=int(line) if line.isdigit() else None,
                field="tag",
                language=sentence.language,
                expected=f"one of {list(label_names)}",
                found=tag,
            )
        ids.append(index[tag])
    return ids


def encode_tagged_words(tokenizer, words, word_labels, sequence_length: int) -> dict:
    """Subword-aligned tagging inputs, in the graph.

    Args:
        tokenizer: a `Tokenizer`.
        words: string [B, (words)].
        word_labels: int [B, (words)] label ids.
        sequence_length: T.

    Returns ``token_ids``, ``padding_mask``, ``labels`` (int32), ``label_weights``
    (float32), all [B, T], and ``truncated_words`` int32 [B].
    """
    if sequence_length < 2:
        raise ValueError(f"sequence_length={sequence_length}: expected >= 2.")
    pieces = tokenizer.tokenize_pretokenized(words)  # [B, (W), (P)]
    word_pieces = pieces.values  # [N_words, (P)]
    labels_per_word = tf.cast(word_labels.flat_values, tf.int32)
    position_in_word = tf.ragged.range(word_pieces.row_lengths())
    is_first = tf.equal(position_in_word.flat_values, 0)
    piece_labels = tf.gather(labels_per_word, word_pieces.value_rowids())
    flat_pieces = pieces.merge_dims(1, 2)  # [B, (pieces)]
    labels = flat_pieces.with_flat_values(tf.where(is_first, piece_labels, 0))
    weights = flat_pieces.with_flat_values(tf.cast(is_first, tf.float32))

    inputs = tokenizer.pack(flat_pieces, sequence_length)
    body = sequence_length - 2
    kept_weights = weights[:, :body]
    rows = labels.nrows()
    zero_int = tf.zeros(tf.stack([rows, 1]), tf.int32)
    zero_float = tf.zeros(tf.stack([rows, 1]), tf.float32)
    labels = tf.concat([zero_int, labels[:, :body], zero_int], axis=1)
    weights = tf.concat([zero_float, kept_weights, zero_float], axis=1)
    inputs["labels"] = labels.to_tensor(0, shape=[None, sequence_length])
    inputs["label_weights"] = weights.to_tensor(0.0, shape=[None, sequence_length])
    inputs["truncated_words"] = tf.cast(
        tf.reduce_sum(tf.ones_like(word_labels, tf.int32), axis=1)
        - tf.cast(tf.reduce_sum(kept_weights, axis=1), tf.int32),
        tf.int32,
    )
    return inputs


def tagging_dataset(
    sentences: Iterable[TaggedSentence],
    tokenizer,
    languages,
    label_names: Sequence[str],
    sequence_length: int,
    batch_size: int,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``token_ids, padding_mask, language_ids, labels, label_weights``.

    A list (any sequence) of sentences is checked and turned into tensors once,
    so the pipeline runs no Python and works under every `tf.distribute`
    strategy; any other iterable (a reader) is streamed through a Python
    generator and re-iterated on every pass (not a one-shot generator; not for
    TPUs or several workers). Unknown tags and languages raise
    `DataFormatError` / `UnknownLanguageError` naming the sentence.
    """
    languages = as_vocabulary(languages)
    label_names = tuple(label_names)

    def row(sentence):
        languages.check([sentence.language], where=sentence.source or "tagged sentence")
        return (
            np.asarray(sentence.words, dtype=object),
            np.asarray(tag_ids(sentence, label_names), dtype=np.int32),
            np.int32(languages.index(sentence.language)),
        )

    if isinstance(sentences, collections.abc.Sequence):
        # Sentences already in memory become tensors: no Python runs inside the pipeline
        # (see `classification_dataset`).
        rows = [row(sentence) for sentence in sentences]
        words = tf.ragged.constant([list(r[0]) for r in rows], dtype=tf.string, ragged_rank=1) if rows \
            else tf.RaggedTensor.from_row_lengths(tf.constant([], tf.string), tf.constant([], tf.int64))
        labels = tf.ragged.constant([r[1].tolist() for r in rows], dtype=tf.int32, ragged_rank=1) if rows \
            else tf.RaggedTensor.from_row_lengths(tf.constant([], tf.int32), tf.constant([], tf.int64))
        language_ids = tf.constant([r[2] for r in rows], tf.int32)
        dataset = tf.data.Dataset.from_tensor_slices((words, labels, language_ids))
    else:

        def generate():
            for sentence in sentences:
                yield row(sentence)

        signature = (
            tf.TensorSpec([None], tf.string),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([], tf.int32),
        )
        dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)

    @tf.autograph.experimental.do_not_convert
    def encode(words, labels, language_ids):
        inputs = encode_tagged_words(tokenizer, words, labels, sequence_length)
        inputs["language_ids"] = language_ids
        return {key: inputs[key] for key in TAGGING_KEYS}

    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
