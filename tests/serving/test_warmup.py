"""Warmup records: TF Serving's PredictionLog format, every language, at most 1000, replayed on load."""

from __future__ import annotations

import types

import tensorflow as tf

from serving import signatures as sig
from serving import warmup


def test_warmup_records_parse_back_and_cover_every_language(text_export, server):
    logs = warmup.read_warmup_file(warmup.warmup_path(text_export))
    covered = {}
    for log in logs:
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
            request = log.predict_log.request
            languages = tf.make_ndarray(request.inputs["language"]).tolist()
        else:
            assert kind == "classify_log"
            request = log.classify_log.request
            languages = [
                e.features.feature["language"].bytes_list.value[0] for e in request.input.example_list.examples
            ]
        assert request.model_spec.name == "tiny"
        covered.setdefault(request.model_spec.signature_name, set()).update(code.decode() for code in languages)
    assert set(covered) == {
        sig.SERVING_DEFAULT,
        sig.SERVE_TEXT,
        sig.EMBED,
        sig.FILL_MASK,
        sig.TAG,
        sig.SENTENCE_CLASSIFICATION,
        sig.CLASSIFY,
    }
    assert all(languages == {"en", "fr", "sw"} for languages in covered.values())
    text_request = next(
        log.predict_log.request
        for log in logs
        if log.HasField("predict_log")
        and log.predict_log.request.model_spec.signature_name == "embed"
        and tf.make_ndarray(log.predict_log.request.inputs["language"]).tolist() == [b"sw"]
    )
    assert tf.make_ndarray(text_request.inputs["text"]).tolist() == [b"habari ya leo"]  # the given warmup text
    with server.manager.servable("tiny") as servable:
        assert servable.warm_up() == len(logs)  # every record runs against the loaded version


def test_many_languages_stay_under_the_record_limit():
    codes = [f"l{i}" for i in range(400)]
    module = types.SimpleNamespace(
        languages=types.SimpleNamespace(codes=codes),
        signature_names=lambda: [sig.SERVING_DEFAULT, sig.EMBED, sig.SERVE_TEXT, sig.CLASSIFY],
        text_mode=True,
        max_length=16,
        vocabulary_size=50,
    )
    logs = warmup.build_warmup_logs(module, "m")
    assert len(logs) <= warmup.MAX_WARMUP_RECORDS
    for name in (sig.SERVING_DEFAULT, sig.SERVE_TEXT):
        seen = set()
        for log in logs:
            if log.HasField("predict_log") and log.predict_log.request.model_spec.signature_name == name:
                seen.update(tf.make_ndarray(log.predict_log.request.inputs["language"]).tolist())
        assert seen == {code.encode() for code in codes}
