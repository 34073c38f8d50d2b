"""Evaluation of a pretrained model on a corpus's tasks, example by example.

- Masked LM: per held-out sequence, the loss and the masked tokens predicted
  correctly, beside the most-frequent-token baseline (always predicting the
  language's most frequent masked token in training batches).
- Retrieval (XTREME's Tatoeba-style): embed each test sentence of language X
  and of the pivot with the model's pooled ``embedding`` output (each through
  its own language's LS layers); accuracy@1 of finding the translation among
  all N pivot candidates by cosine similarity (baseline 1/N).
- Classification: a logistic-regression probe on the frozen sentence
  embeddings, trained on the pivot only and evaluated on every language
  (zero-shot), or trained and tested in each language (in-language);
  baseline: the majority class. Text pairs (NLI) are embedded one by one and
  joined as ``[u, v, |u - v|, u * v]``.
- Tagging: `tagging_records` scores a fine-tuned tagger per sentence (words
  correct, words; or the predicted tag sequence for seqeval's span F1).

Embeddings are centred per language before retrieval and before the probe
(each language's mean embedding over the evaluated sentences is subtracted,
Libovický et al. 2020, "On the Language Neutrality of Pre-trained
Multilingual Representations"): what is left is what a sentence says, not
which language it is in. ``center_languages=False`` turns it off.

The ``*_records`` functions return, per language, what
`tf_metaling.estimates` needs for a CI over test examples. A language the
model does not know (a Mono or JointPair model) is not scored.
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

from tf_metaling.data.tasks import retrieval_accuracy_at_1, retrieval_sets
from tf_metaling.estimates import ratio_record, span_f1_record
from tf_metaling.models.multilingual_model import EMBEDDING, MASKED_LM_LOGITS, TOKEN_LOGITS


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


# ----------------------------------------------------------------------------- per-example records
def mlm_records(model, eval_batches: dict, baselines: dict) -> dict:
    """``{code: {"mlm_loss": record, "mlm_accuracy": record}}`` over held-out sequences.

    `baselines`: ``{code: accuracy of the most frequent masked token}``
    (`MlmInputs.accuracy_baselines`), the accuracy record's baseline.
    """

    @tf.function(autograph=False, reduce_retracing=True)
    def score(batch):
        logits = model(batch, training=False, outputs=(MASKED_LM_LOGITS,))[MASKED_LM_LOGITS]
        weights = tf.cast(batch["mask_weights"], tf.float32)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["mask_ids"], logits=tf.cast(logits, tf.float32))
        predicted = tf.argmax(logits, axis=-1, output_type=batch["mask_ids"].dtype)
        correct = tf.cast(tf.equal(predicted, batch["mask_ids"]), tf.float32) * weights
        return tf.reduce_sum(cross_entropy * weights, axis=1), tf.reduce_sum(correct, axis=1), tf.reduce_sum(weights, axis=1)

    records = {}
    for code, batches in eval_batches.items():
        if code not in model.language_vocabulary or not batches:
            continue
        losses, correct, weights = [], [], []
        for batch in batches:
            loss, right, weight = (t.numpy() for t in score(batch))
            losses.append(loss)
            correct.append(right)
            weights.append(weight)
        weights = np.concatenate(weights)
        baseline = baselines.get(code)
        records[code] = {
            "mlm_loss": ratio_record(np.concatenate(losses), weights),
            "mlm_accuracy": ratio_record(np.concatenate(correct), weights, baseline=baseline),
        }
    return records


def _centered(embeddings, center: bool):
    return embeddings - embeddings.mean(axis=0, keepdims=True) if center and len(embeddings) else embeddings


def retrieval_records(model, tokenizer, corpus, sequence_length: int, pivot: str, max_pairs: int,
                      center_languages: bool = True) -> dict:
    """``{X: record}``: per query, 1 if its translation is the nearest pivot sentence (baseline 1/N)."""
    known = model.language_vocabulary
    if pivot not in known:
        return {}
    records = {}
    for code, pairs in corpus.retrieval_sets(pivot, max_pairs=max_pairs).items():
        if code not in known:
            continue
        source = _centered(sentence_embeddings(model, tokenizer, pairs.source_sentences, code, sequence_length),
                           center_languages)
        target = _centered(sentence_embeddings(model, tokenizer, pairs.target_sentences, pivot, sequence_length),
                           center_languages)
        source = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
        target = target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)
        hits = (np.argmax(source @ target.T, axis=1) == np.arange(len(pairs))).astype(float)
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=1.0 / len(pairs))
    return records


def _features(model, tokenizer, examples, code, sequence_length):
    first = sentence_embeddings(model, tokenizer, [e.text for e in examples], code, sequence_length)
    if examples and examples[0].text_pair is not None:
        second = sentence_embeddings(model, tokenizer, [e.text_pair for e in examples], code, sequence_length)
        return np.concatenate([first, second, np.abs(first - second), first * second], axis=1)
    return first


def classification_records(model, tokenizer, task, sequence_length: int, max_train: int = 2000,
                           seed: int = 0, center_languages: bool = True, protocol: str = "zero_shot") -> dict:
    """``{code: record}`` of a probe on frozen embeddings, per test example (baseline: majority class).

    ``protocol="zero_shot"``: one probe trained on `task.train_language`,
    tested on every language. ``"in_language"``: a probe per language, trained
    on that language's own training examples (`task.train_by_language`).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if protocol not in ("zero_shot", "in_language"):
        raise ValueError(f"protocol={protocol!r}: expected 'zero_shot' or 'in_language'.")
    known = model.language_vocabulary
    labels = list(task.label_names)

    def train_probe(examples, code):
        if len(examples) > max_train:
            chosen = np.random.RandomState(seed).choice(len(examples), max_train, replace=False)
            examples = [examples[i] for i in sorted(chosen)]
        features = _centered(_features(model, tokenizer, examples, code, sequence_length), center_languages)
        targets = np.array([labels.index(e.label) for e in examples])
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
        return probe.fit(features, targets), collections.Counter(targets.tolist()).most_common(1)[0][0]

    shared = None
    if protocol == "zero_shot":
        if task.train_language not in known:
            return {}
        shared = train_probe(task.train, task.train_language)
    records = {}
    for code, examples in task.test.items():
        if code not in known or not examples:
            continue
        if shared is not None:
            probe, majority = shared
        elif task.train_by_language.get(code):
            probe, majority = train_probe(task.train_by_language[code], code)
        else:
            continue
        expected = np.array([labels.index(e.label) for e in examples])
        features = _centered(_features(model, tokenizer, examples, code, sequence_length), center_languages)
        hits = (probe.predict(features) == expected).astype(float)
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=float(np.mean(expected == majority)))
    return records


def tagging_records(model, tokenizer, task, language: str, sequence_length: int, batch_size: int = 64) -> dict:
    """The record of a fine-tuned tagger on `task.test[language]`, per sentence.

    Accuracy: words tagged correctly / words (a word's tag is predicted on its
    first subword; words cut off by `sequence_length` count as wrong). Span F1:
    the predicted tag sequence (cut-off words predicted ``O``) for seqeval.
    """
    from tf_metaling.data.token_tagging import tagging_dataset

    sentences = task.test[language]
    labels = list(model.token_class_names)
    dataset = tagging_dataset(sentences, tokenizer, model.language_vocabulary, labels, sequence_length, batch_size)

    @tf.function(autograph=False, reduce_retracing=True)
    def predict(batch):
        return tf.argmax(model(batch, training=False, outputs=(TOKEN_LOGITS,))[TOKEN_LOGITS], axis=-1)

    predicted_tags = []
    for batch in dataset:
        predicted = predict(batch).numpy()
        weights = batch["label_weights"].numpy()
        for row, weight in zip(predicted, weights):
            predicted_tags.append([labels[i] for i in row[weight > 0]])
    true_tags = [list(s.tags) for s in sentences]
    predicted_tags = [p + ["O"] * (len(t) - len(p)) for p, t in zip(predicted_tags, true_tags)]
    if task.metric == "span_f1":
        return span_f1_record(true_tags, predicted_tags, baseline=task.baseline(language))
    correct = [sum(p == t for p, t in zip(pred, true)) for pred, true in zip(predicted_tags, true_tags)]
    return ratio_record(correct, [len(t) for t in true_tags], baseline=task.baseline(language))


def finetuned_classification_records(model, tokenizer, task, sequence_length: int, batch_size: int = 64) -> dict:
    """``{code: record}`` of a fine-tuned classifier (its own head) on `task.test`, per example.

    Every language the model knows is scored; for languages other than the
    one it was fine-tuned on, this is zero-shot transfer. Baseline: the test
    set's majority class (0.5 on `balanced_test` sets of two classes).
    """
    from tf_metaling.data.sentence_classification import classification_dataset
    from tf_metaling.models.multilingual_model import SENTENCE_LOGITS

    labels = list(task.label_names)

    @tf.function(autograph=False, reduce_retracing=True)
    def predict(batch):
        return tf.argmax(model(batch, training=False, outputs=(SENTENCE_LOGITS,))[SENTENCE_LOGITS], axis=-1)

    records = {}
    for code, examples in task.test.items():
        if code not in model.language_vocabulary or not examples:
            continue
        pairs = examples[0].text_pair is not None
        dataset = classification_dataset(examples, tokenizer, model.language_vocabulary, labels, sequence_length,
                                         batch_size, pairs=pairs)
        hits = []
        for batch in dataset:
            hits.append((predict(batch).numpy() == batch["labels"].numpy()).astype(float))
        hits = np.concatenate(hits)
        expected = np.array([labels.index(e.label) for e in examples])
        majority = float(np.bincount(expected, minlength=len(labels)).max() / len(expected))
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=majority)
    return records
