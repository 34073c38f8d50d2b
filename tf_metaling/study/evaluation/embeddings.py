"""Sentence embeddings of a model, the input of retrieval and of the classification probe.

A model's pooled ``embedding`` output, each sentence through its own
language's LS layers, computed in fixed-size batches by one traced function
per (model, tokenizer, length) with the language as an input. Embeddings are
centred per language before they are compared (`centered`: each language's
mean embedding over the evaluated sentences is subtracted, Libovický et al.
2020, "On the Language Neutrality of Pre-trained Multilingual
Representations"): what is left is what a sentence says, not which language
it is in.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_metaling.models.multilingual_model import EMBEDDING

_ENCODERS = {}
# Batches are cut to the longest sentence they hold, rounded up to this many positions: sorted by
# length, most verses fit in far fewer than the sequence length (padding changes no embedding).
LENGTH_BUCKET = 16


def _encoder(model, tokenizer, sequence_length):
    """``(tokenize, embed)`` traced once per (model, tokenizer, length); the language is an input."""
    key = (id(model), id(tokenizer), sequence_length)
    if key not in _ENCODERS:
        if len(_ENCODERS) > 8:
            _ENCODERS.clear()

        @tf.function(autograph=False, reduce_retracing=True)
        def tokenize(texts, language_id):
            # A synthetic-language tokenizer transforms each language's ids (data/synthetic.py).
            language = {"language_ids": language_id} if getattr(tokenizer, "needs_language", False) else {}
            return tokenizer.encode(texts, sequence_length, **language)

        @tf.function(autograph=False, reduce_retracing=True)
        def embed(inputs, language_id):
            return model({**inputs, "language_ids": language_id}, training=False, outputs=(EMBEDDING,))[EMBEDDING]

        _ENCODERS[key] = (tokenize, embed)
    return _ENCODERS[key]


def sentence_embeddings(model, tokenizer, sentences, language: str, sequence_length: int,
                        batch_size: int = 64) -> np.ndarray:
    """``[N, hidden]`` pooled embeddings of `sentences`, all in `language` (through its LS layers).

    Sentences are embedded in order of length, each batch cut to its longest
    sentence (rounded up to `LENGTH_BUCKET`): the same embeddings as at the full
    `sequence_length`, up to float rounding, at a fraction of the cost.
    """
    language_id = tf.constant(model.language_vocabulary.index(language), tf.int32)
    tokenize, embed = _encoder(model, tokenizer, sequence_length)
    if not len(sentences):
        return np.zeros((0, model.encoder.hidden_dim))
    pieces = []
    for start in range(0, len(sentences), batch_size):
        texts = list(sentences[start:start + batch_size])
        padded = texts + [""] * (batch_size - len(texts))  # one shape: one trace
        encoded = {k: v.numpy()[: len(texts)] for k, v in tokenize(tf.constant(padded), language_id).items()}
        pieces.append(encoded)
    inputs = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
    lengths = inputs["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    embeddings = np.zeros((len(sentences), model.encoder.hidden_dim), np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        rows_padded = np.concatenate([rows, np.repeat(rows[-1:], batch_size - len(rows))])  # one batch shape
        width = int(min(sequence_length, -(-max(int(lengths[rows].max()), 1) // LENGTH_BUCKET) * LENGTH_BUCKET))
        batch = {key: tf.constant(value[rows_padded][:, :width] if value.ndim == 2 else value[rows_padded])
                 for key, value in inputs.items()}
        embeddings[rows] = embed(batch, language_id).numpy()[: len(rows)]
    return embeddings


def centered(embeddings, center: bool = True):
    """`embeddings` minus their mean (one language's sentences), unless `center` is False."""
    return embeddings - embeddings.mean(axis=0, keepdims=True) if center and len(embeddings) else embeddings
