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
        if len(_ENCODERS) > 4:
            _ENCODERS.clear()

        @tf.function(autograph=False, reduce_retracing=True)
        def tokenize(texts, language_id):
            # A synthetic-language tokenizer transforms each language's ids (data/synthetic.py).
            language = {"language_ids": language_id} if getattr(tokenizer, "needs_language", False) else {}
            return tokenizer.encode(texts, sequence_length, **language)

        @tf.function(autograph=False, reduce_retracing=True)
        def embed(inputs, language_id):
            return model({**inputs, "language_ids": language_id}, training=False, outputs=(EMBEDDING,))[EMBEDDING]

        # The model and tokenizer are kept with their functions: while the entry lives, their ids
        # cannot be reused (a tokenizer's SentencePiece resource dies with it).
        _ENCODERS[key] = (tokenize, embed, model, tokenizer)
    return _ENCODERS[key][:2]


class SharedPrefix:
    """Hidden states below the LS layers, kept across models whose weights there are the same.

    Models that differ only in their LS layers and heads (the transfer
    protocol's reference, +LS and +Meta LS runs on one frozen encoder) compute
    the same hidden states up to their first LS block: kept here per sentence
    set, each model runs only the blocks from there on. A model is served from
    the cache only when its weights below that block match those it was filled
    with (a checksum of every one of them); otherwise its embeddings are
    computed in full.
    """

    def __init__(self, max_entries: int = 64):
        self.max_entries = max_entries
        self.entries = {}
        self.fingerprints = {}

    def fingerprint(self, model, start_block: int) -> tuple:
        key = (id(model), start_block)
        known = self.fingerprints.get(key)
        if known is None or known[0] is not model:  # (a new model may get a deleted one's id)
            encoder = model.encoder
            variables = list(encoder.embedding.weights) + [w for b in encoder.blocks[:start_block] for w in b.weights]
            known = (model, (start_block, tuple(float(np.sum(np.asarray(v.numpy(), np.float64))) for v in variables)))
            if len(self.fingerprints) > 4:
                self.fingerprints.clear()
            self.fingerprints[key] = known
        return known[1]


def _finish_function(model):
    @tf.function(autograph=False, reduce_retracing=True)
    def finish(hidden, padding_mask, language_id, start_block):
        sequence = model.encoder.call_from(hidden, padding_mask, language_id, int(start_block))
        return model.pooler(sequence, padding_mask)

    return finish


def _prefix_function(model):
    @tf.function(autograph=False, reduce_retracing=True)
    def prefix(inputs, start_block):
        return model.encoder.shared_prefix(inputs, int(start_block))

    return prefix


def sentence_embeddings(model, tokenizer, sentences, language: str, sequence_length: int,
                        batch_size: int = 64, shared_prefix: SharedPrefix | None = None) -> np.ndarray:
    """``[N, hidden]`` pooled embeddings of `sentences`, all in `language` (through its LS layers).

    Sentences are embedded in order of length, each batch cut to its longest
    sentence (rounded up to `LENGTH_BUCKET`): the same embeddings as at the full
    `sequence_length`, up to float rounding, at a fraction of the cost. With
    `shared_prefix`, the hidden states below the model's first LS block come
    from (or go into) that cache.
    """
    language_id = tf.constant(model.language_vocabulary.index(language), tf.int32)
    _, embed = _encoder(model, tokenizer, sequence_length)
    if not len(sentences):
        return np.zeros((0, model.encoder.hidden_dim))
    start_block = model.encoder.first_language_specific_block if shared_prefix is not None else 0
    if start_block > 0 and not getattr(tokenizer, "needs_language", False):
        return _embeddings_from_prefix(model, tokenizer, list(sentences), language_id, sequence_length, batch_size,
                                       shared_prefix, start_block)
    embeddings = np.zeros((len(sentences), model.encoder.hidden_dim), np.float32)
    for rows, batch in _batches(model, tokenizer, sentences, language_id, sequence_length, batch_size):
        embeddings[rows] = embed(batch, language_id).numpy()[: len(rows)]
    return embeddings


def _batches(model, tokenizer, sentences, language_id, sequence_length, batch_size):
    """``(rows, inputs)`` per length-sorted batch of `sentences`, each cut to its bucketed longest sentence."""
    tokenize, _ = _encoder(model, tokenizer, sequence_length)
    pieces = []
    for start in range(0, len(sentences), batch_size):
        texts = list(sentences[start:start + batch_size])
        padded = texts + [""] * (batch_size - len(texts))  # one shape: one trace
        pieces.append({k: v.numpy()[: len(texts)] for k, v in tokenize(tf.constant(padded), language_id).items()})
    inputs = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
    lengths = inputs["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        rows_padded = np.concatenate([rows, np.repeat(rows[-1:], batch_size - len(rows))])  # one batch shape
        width = int(min(sequence_length, -(-max(int(lengths[rows].max()), 1) // LENGTH_BUCKET) * LENGTH_BUCKET))
        yield rows, {key: tf.constant(value[rows_padded][:, :width] if value.ndim == 2 else value[rows_padded])
                     for key, value in inputs.items()}


def _embeddings_from_prefix(model, tokenizer, sentences, language_id, sequence_length, batch_size, cache,
                            start_block):
    key = (tuple(sentences), sequence_length, batch_size, cache.fingerprint(model, start_block))
    if key not in cache.entries:
        if len(cache.entries) >= cache.max_entries:
            cache.entries.pop(next(iter(cache.entries)))
        prefix = _prefix_function(model)
        cache.entries[key] = [(rows, inputs["padding_mask"], prefix(inputs, start_block))
                              for rows, inputs in _batches(model, tokenizer, sentences, language_id, sequence_length,
                                                           batch_size)]
    if id(model) not in _FINISHERS and len(_FINISHERS) > 4:
        _FINISHERS.clear()
    finish = _FINISHERS.setdefault(id(model), (model, _finish_function(model)))[1]
    embeddings = np.zeros((len(sentences), model.encoder.hidden_dim), np.float32)
    for rows, padding_mask, hidden in cache.entries[key]:
        embeddings[rows] = finish(hidden, padding_mask, language_id, start_block).numpy()[: len(rows)]
    return embeddings


_FINISHERS = {}


def centered(embeddings, center: bool = True):
    """`embeddings` minus their mean (one language's sentences), unless `center` is False."""
    return embeddings - embeddings.mean(axis=0, keepdims=True) if center and len(embeddings) else embeddings
