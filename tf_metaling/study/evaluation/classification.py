"""Sentence classification figures of a run, per test example (baseline: the majority class).

- A logistic-regression probe on the frozen sentence embeddings
  (`probe_classification_records`), trained on the pivot only and evaluated on
  every language (zero-shot), or trained and tested in each language
  (in-language). Text pairs (NLI) are embedded one by one and joined as
  ``[u, v, |u - v|, u * v]``.
- A classifier fine-tuned with its own head (`finetuned_classification_records`):
  its accuracy in every language the model knows (zero-shot except the
  language it was trained on).
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tf_metaling.data.sentence_classification import classification_dataset
from tf_metaling.estimates import ratio_record
from tf_metaling.models.multilingual_model import SENTENCE_LOGITS
from tf_metaling.study.evaluation.embeddings import centered, sentence_embeddings

PROTOCOLS = ("zero_shot", "in_language")


def _features(model, tokenizer, examples, code, sequence_length):
    first = sentence_embeddings(model, tokenizer, [e.text for e in examples], code, sequence_length)
    if examples and examples[0].text_pair is not None:
        second = sentence_embeddings(model, tokenizer, [e.text_pair for e in examples], code, sequence_length)
        return np.concatenate([first, second, np.abs(first - second), first * second], axis=1)
    return first


def probe_classification_records(model, tokenizer, task, sequence_length: int, max_train: int = 2000,
                                 seed: int = 0, center_languages: bool = True, protocol: str = "zero_shot") -> dict:
    """``{code: record}`` of a probe on frozen embeddings, per test example (baseline: majority class).

    ``protocol="zero_shot"``: one probe trained on `task.train_language`,
    tested on every language. ``"in_language"``: a probe per language, trained
    on that language's own training examples (`task.train_by_language`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: expected one of {PROTOCOLS}.")
    known = model.language_vocabulary
    labels = list(task.label_names)

    def train_probe(examples, code):
        if len(examples) > max_train:
            chosen = np.random.RandomState(seed).choice(len(examples), max_train, replace=False)
            examples = [examples[i] for i in sorted(chosen)]
        features = centered(_features(model, tokenizer, examples, code, sequence_length), center_languages)
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
        features = centered(_features(model, tokenizer, examples, code, sequence_length), center_languages)
        hits = (probe.predict(features) == expected).astype(float)
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=float(np.mean(expected == majority)))
    return records


_PREDICTORS = {}


def classifier_predictions(model, tokenizer, examples, label_names, sequence_length: int,
                           batch_size: int = 64) -> np.ndarray:
    """A fine-tuned classifier's predicted class of each example (its own head), through the example's language."""
    if id(model) not in _PREDICTORS:  # one trace per model, whatever the number of languages
        if len(_PREDICTORS) > 4:
            _PREDICTORS.clear()

        @tf.function(autograph=False, reduce_retracing=True)
        def predict(batch):
            return tf.argmax(model(batch, training=False, outputs=(SENTENCE_LOGITS,))[SENTENCE_LOGITS], axis=-1)

        _PREDICTORS[id(model)] = (model, predict)  # the model is kept: its id cannot be reused meanwhile
    predict = _PREDICTORS[id(model)][1]
    if not examples:
        return np.zeros(0, np.int64)
    pairs = examples[0].text_pair is not None
    dataset = classification_dataset(examples, tokenizer, model.language_vocabulary, list(label_names),
                                     sequence_length, batch_size, pairs=pairs)
    return np.concatenate([predict(batch).numpy() for batch in dataset])


def finetuned_classification_records(model, tokenizer, task, sequence_length: int, batch_size: int = 64) -> dict:
    """``{code: record}`` of a fine-tuned classifier (its own head) on `task.test`, per example.

    Every language the model knows is scored; for languages other than the
    one it was fine-tuned on, this is zero-shot transfer. Baseline: the test
    set's majority class (0.5 on `balanced_test` sets of two classes).
    """
    labels = list(task.label_names)
    records = {}
    for code, examples in task.test.items():
        if code not in model.language_vocabulary or not examples:
            continue
        predicted = classifier_predictions(model, tokenizer, examples, labels, sequence_length, batch_size)
        expected = np.array([labels.index(e.label) for e in examples])
        hits = (predicted == expected).astype(float)
        majority = float(np.bincount(expected, minlength=len(labels)).max() / len(expected))
        records[code] = ratio_record(hits, np.ones_like(hits), baseline=majority)
    return records
