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


def _encoder(model, tokenizer, sequence_length):
    """One traced embedding function per (model, tokenizer, length); the language is an input."""
    key = (id(model), id(tokenizer), sequence_length)
    if key not in _ENCODERS:
        if len(_ENCODERS) > 8:
            _ENCODERS.clear()

        @tf.function(autograph=False, reduce_retracing=True)
        def encode(texts, language_id):
            # A synthetic-language tokenizer transforms each language's ids (data/synthetic.py).
            language = {"language_ids": language_id} if getattr(tokenizer, "needs_language", False) else {}
            inputs = {**tokenizer.encode(texts, sequence_length, **language), "language_ids": language_id}
            return model(inputs, training=False, outputs=(EMBEDDING,))[EMBEDDING]

        _ENCODERS[key] = encode
    return _ENCODERS[key]


def sentence_embeddings(model, tokenizer, sentences, language: str, sequence_length: int,
                        batch_size: int = 64) -> np.ndarray:
    """``[N, hidden]`` pooled embeddings of `sentences`, all in `language`."""
    language_id = tf.constant(model.language_vocabulary.index(language), tf.int32)
    encode = _encoder(model, tokenizer, sequence_length)
    chunks = []
    for start in range(0, len(sentences), batch_size):
        texts = list(sentences[start:start + batch_size])
        padded = texts + [""] * (batch_size - len(texts))  # one shape: one trace
        chunks.append(encode(tf.constant(padded), language_id).numpy()[: len(texts)])
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, model.encoder.hidden_dim))


def centered(embeddings, center: bool = True):
    """`embeddings` minus their mean (one language's sentences), unless `center` is False."""
    return embeddings - embeddings.mean(axis=0, keepdims=True) if center and len(embeddings) else embeddings
