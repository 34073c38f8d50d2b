"""Cross-lingual evaluation of a pretrained model with the built-in tasks.

- Retrieval (XTREME's Tatoeba-style): embed each test sentence of language X
  and of English with the model's pooled ``embedding`` output (each through
  its own language's LS layers); accuracy@1 of finding the translation among
  all English candidates by cosine similarity.
- Zero-shot classification: a logistic-regression probe on the frozen
  sentence embeddings, trained on English only, evaluated on every language
  (the labels are facts of the verse, identical across translations).

A language the model does not know (a Mono or JointPair model) is not scored.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_metaling.data.tasks import retrieval_accuracy_at_1, retrieval_sets
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
            inputs = {**tokenizer.encode(texts, sequence_length), "language_ids": language_id}
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


def retrieval_accuracy(model, tokenizer, corpus, sequence_length: int, pivot: str = "en",
                       max_pairs: int = 500) -> dict:
    """``{language: accuracy@1 of X -> pivot}`` for the languages the model knows."""
    known = model.language_vocabulary
    if pivot not in known:
        return {}
    scores = {}
    for code, pairs in retrieval_sets(corpus, pivot=pivot, max_pairs=max_pairs).items():
        if code not in known:
            continue
        source = sentence_embeddings(model, tokenizer, pairs.source_sentences, code, sequence_length)
        target = sentence_embeddings(model, tokenizer, pairs.target_sentences, pivot, sequence_length)
        scores[code] = retrieval_accuracy_at_1(source, target)
    return scores


def zero_shot_classification(model, tokenizer, task, sequence_length: int, max_train: int = 2000,
                             seed: int = 0) -> dict:
    """``{language: accuracy}`` of an English-trained probe on frozen embeddings."""
    from sklearn.linear_model import LogisticRegression

    known = model.language_vocabulary
    if task.train_language not in known:
        return {}
    labels = list(task.label_names)
    train = task.train
    if len(train) > max_train:
        chosen = np.random.RandomState(seed).choice(len(train), max_train, replace=False)
        train = [train[i] for i in sorted(chosen)]
    features = sentence_embeddings(model, tokenizer, [e.text for e in train], task.train_language, sequence_length)
    targets = np.array([labels.index(e.label) for e in train])
    probe = LogisticRegression(max_iter=2000, class_weight="balanced")
    probe.fit(features, targets)
    scores = {}
    for code, examples in task.test.items():
        if code not in known or not examples:
            continue
        embedded = sentence_embeddings(model, tokenizer, [e.text for e in examples], code, sequence_length)
        expected = np.array([labels.index(e.label) for e in examples])
        scores[code] = float(np.mean(probe.predict(embedded) == expected))
    return scores
