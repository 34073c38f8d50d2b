"""Warmup requests: ``assets.extra/tf_serving_warmup_requests`` in TF Serving's format.

TF Serving (and `serving.server`) replays these PredictionLog records right after
loading a version and before serving it, so the first real request does not pay
for graph warm-up. The records are built with the tensorflow-serving-api protos:
one request per signature for every language (batched several languages to a
request when that keeps the file under TF Serving's limit of 1000 records), a
Classify request for the ``classify`` signature.
"""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from serving import signatures as sig

WARMUP_DIRECTORY = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many records
DEFAULT_WARMUP_TEXT = "Hello world, this is a warmup sentence."


def warmup_path(version_dir: str) -> str:
    return os.path.join(version_dir, WARMUP_DIRECTORY, WARMUP_FILE)


def build_warmup_logs(
    serving_module,
    model_name: str,
    warmup_texts: dict | None = None,
    max_records: int = MAX_WARMUP_RECORDS,
) -> list:
    """PredictionLog records covering every language and every signature of `serving_module`.

    Args:
        serving_module: the `signatures.ServingModule` being exported.
        model_name: the model name the requests address.
        warmup_texts: optional ``{language: text}``; other languages use a default text.
            Texts for ``fill_mask`` get a ``[MASK]`` appended.
        max_records: at most this many records (TF Serving's limit is 1000).
    """
    codes = list(serving_module.languages.codes)
    warmup_texts = dict(warmup_texts or {})
    unknown = sorted(set(warmup_texts) - set(codes))
    if unknown:
        raise ValueError(f"warmup_texts has languages {unknown} that the model does not have ({codes}).")
    names = serving_module.signature_names()
    if max_records < len(names):
        raise ValueError(f"max_records={max_records} is fewer than the {len(names)} signatures.")
    per_request = max(1, math.ceil(len(codes) * len(names) / max_records))
    logs = []
    for name in names:
        for start in range(0, len(codes), per_request):
            languages = codes[start : start + per_request]
            texts = [warmup_texts.get(code, DEFAULT_WARMUP_TEXT) for code in languages]
            if name == sig.CLASSIFY:
                logs.append(_classify_log(model_name, serving_module, texts, languages))
            else:
                logs.append(_predict_log(model_name, name, serving_module, texts, languages))
    return logs


def write_warmup_file(path: str, logs: list) -> str:
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(logs)} warmup records: TF Serving reads at most {MAX_WARMUP_RECORDS}.")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(path: str) -> list:
    """The PredictionLog records of a warmup file (raises on a malformed record)."""
    logs = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def _request_arrays(name, serving_module, texts, languages) -> dict:
    language = np.asarray([code.encode() for code in languages], dtype=object)
    if name == sig.SERVING_DEFAULT or not serving_module.text_mode:
        # A short in-range sentence of ids: [CLS] w w w ... [SEP].
        length = min(8, serving_module.max_length)
        rng = np.random.RandomState(0)
        token_ids = rng.randint(5, serving_module.vocabulary_size, size=(len(languages), length)).astype(np.int32)
        token_ids[:, 0], token_ids[:, -1] = 2, 3
        if name == sig.FILL_MASK:
            token_ids[:, 1] = 4
        return {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids), "language": language}
    if name == sig.FILL_MASK:
        texts = [text + " [MASK]" for text in texts]
    return {"text": np.asarray([text.encode() for text in texts], dtype=object), "language": language}


def _predict_log(model_name, name, serving_module, texts, languages):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = name
    for key, value in _request_arrays(name, serving_module, texts, languages).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def _classify_log(model_name, serving_module, texts, languages):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = sig.CLASSIFY
    examples = request.input.example_list.examples
    for text, language in zip(texts, languages):
        examples.append(make_example(serving_module.text_mode, text, language, serving_module))
    return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))


def make_example(text_mode, text, language, serving_module=None, token_ids=None):
    """One tf.Example with the ``classify`` signature's features."""
    example = tf.train.Example()
    features = example.features.feature
    features["language"].bytes_list.value.append(language.encode())
    if text_mode:
        features["text"].bytes_list.value.append(text.encode())
    else:
        if token_ids is None:
            token_ids = [2] + [5 + i % (serving_module.vocabulary_size - 5) for i in range(6)] + [3]
        features["token_ids"].int64_list.value.extend(int(i) for i in token_ids)
    return example


__all__ = ["build_warmup_logs", "make_example", "read_warmup_file", "warmup_path", "write_warmup_file"]
