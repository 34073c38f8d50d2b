"""The exporter: TF Serving layout, atomic versions, signatures that compute the model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from serving import export as export_module
from serving import signatures as sig
from serving.export import existing_versions, export_model, next_version
from serving.op_check import read_saved_model
from tests.serving import fixtures
from tf_metaling.tokenizers import MASK_ID, NUM_SPECIAL_TOKENS


def _call(loaded, name, **inputs):
    outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def _model_ids(text_model, inputs):
    vocabulary = text_model.language_vocabulary
    return {
        "token_ids": tf.constant(inputs["token_ids"]),
        "padding_mask": tf.constant(inputs["padding_mask"]),
        "language_ids": tf.constant(vocabulary.indices([c.decode() for c in inputs["language"]]), tf.int32),
    }


def test_version_directory_layout(text_export, export_base):
    assert text_export == os.path.join(export_base, "tiny", "1")
    names = set(os.listdir(text_export))
    assert {"saved_model.pb", "variables", "assets", "assets.extra", "model_card.md"} <= names
    assert os.path.exists(os.path.join(text_export, "assets.extra", "tf_serving_warmup_requests"))
    # Only integer version directories are visible: no temporary export left behind.
    assert os.listdir(os.path.dirname(text_export)) == ["1"]
    assert existing_versions(os.path.dirname(text_export)) == [1]
    assert next_version(os.path.dirname(text_export)) == 2


def test_signatures_and_method_names(text_export, ids_export):
    text_signatures = read_saved_model(text_export).meta_graphs[0].signature_def
    assert {
        sig.SERVING_DEFAULT,
        sig.SERVE_TEXT,
        sig.EMBED,
        sig.FILL_MASK,
        sig.TAG,
        sig.SENTENCE_CLASSIFICATION,
        sig.CLASSIFY,
    } <= set(text_signatures)
    assert text_signatures[sig.CLASSIFY].method_name == sig.CLASSIFY_METHOD_NAME
    assert set(text_signatures[sig.CLASSIFY].inputs) == {"inputs"}
    assert set(text_signatures[sig.CLASSIFY].outputs) == {"classes", "scores"}
    assert text_signatures[sig.SERVE_TEXT].method_name == sig.PREDICT_METHOD_NAME
    assert set(text_signatures[sig.EMBED].inputs) == {"text", "language"}
    ids_signatures = read_saved_model(ids_export).meta_graphs[0].signature_def
    # No tokenizer, no tagging or class heads: token-id signatures only.
    assert {k for k in ids_signatures if not k.startswith("__")} == {sig.SERVING_DEFAULT, sig.EMBED, sig.FILL_MASK}
    assert set(ids_signatures[sig.EMBED].inputs) == {"token_ids", "padding_mask", "language"}


def test_existing_version_and_bad_names_are_refused(text_model, export_base):
    with pytest.raises(FileExistsError, match="immutable"):
        export_model(text_model, export_base, "tiny", 1)
    with pytest.raises(ValueError, match="positive integer"):
        export_model(text_model, export_base, "other", 0)
    with pytest.raises(ValueError, match="model_name"):
        export_model(text_model, export_base, "../escape", 1)


def test_a_failed_export_leaves_no_version_and_no_temporary(ids_model, tmp_path, monkeypatch):
    def crash(module, path, signatures):  # a save that dies half way through
        with open(os.path.join(path, "saved_model.pb"), "wb") as file:
            file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module.tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(ids_model, str(tmp_path), "m", 1)
    assert os.listdir(tmp_path / "m") == []


def test_serving_default_matches_the_model_on_a_mixed_language_batch(text_model, loaded_text, tokenizer):
    inputs = fixtures.id_batch(("en", "sw", "fr", "en"), vocabulary_size=tokenizer.vocab_size)
    served = _call(loaded_text, sig.SERVING_DEFAULT, **inputs)
    direct = text_model(_model_ids(text_model, inputs), outputs=["sequence_output", "embedding"])
    np.testing.assert_allclose(served["embedding"], direct["embedding"].numpy(), atol=1e-5)
    np.testing.assert_allclose(served["sequence_output"], direct["sequence_output"].numpy(), atol=1e-5)
    # Each example ran through its own language: the same ids in another language differ.
    same_ids = dict(inputs, language=np.asarray([b"fr", b"sw", b"fr", b"en"], dtype=object))
    other = _call(loaded_text, sig.SERVING_DEFAULT, **same_ids)
    assert np.abs(other["embedding"][0] - served["embedding"][0]).max() > 1e-3
    np.testing.assert_allclose(other["embedding"][3], served["embedding"][3], atol=1e-6)


def test_serve_text_tokenizes_in_the_graph(loaded_text, tokenizer, text_model):
    texts = ["the cat sat on the mat", "le chat", "paka ameketi juu ya mkeka leo na kesho tena"]
    served = _call(loaded_text, sig.SERVE_TEXT, text=texts, language=["en", "fr", "sw"])
    length = served["token_ids"].shape[1]
    assert length <= 16  # the model's positions
    expected = tokenizer.encode(tf.constant(texts), sequence_length=16)
    lengths = served["padding_mask"].sum(axis=1)
    for row in range(3):
        real = expected["padding_mask"].numpy()[row].sum()
        if real < 16:  # not truncated: same ids as the tokenizer's own packing
            np.testing.assert_array_equal(served["token_ids"][row, :real], expected["token_ids"].numpy()[row, :real])
        assert lengths[row] == min(real, 16)
    assert length == lengths.max()  # padded only to the longest text
    direct = text_model(
        {
            "token_ids": served["token_ids"],
            "padding_mask": served["padding_mask"],
            "language_ids": tf.constant([0, 1, 2]),
        },
        outputs=["embedding"],
    )
    np.testing.assert_allclose(served["embedding"], direct["embedding"].numpy(), atol=1e-5)


def test_unknown_language_error_names_the_code(loaded_text):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Unknown language code\(s\): \\?'de"):
        _call(loaded_text, sig.EMBED, text=["a", "b"], language=["en", "de"])


def test_fallback_policy_serves_unknown_languages_as_the_default(loaded_ids):
    inputs = fixtures.id_batch(("en", "fr"))
    unknown = dict(inputs, language=np.asarray([b"en", b"xx"], dtype=object))
    served = _call(loaded_ids, sig.EMBED, **unknown)
    reference = _call(loaded_ids, sig.EMBED, **inputs)
    np.testing.assert_allclose(served["embedding"], reference["embedding"], atol=1e-6)


def test_fill_mask_returns_top_k_non_special_tokens(loaded_text, text_model, tokenizer):
    served = _call(loaded_text, sig.FILL_MASK, text=["the [MASK] sat on the [MASK]", "le chat"], language=["en", "fr"])
    token_ids = served["token_ids"]
    positions = served["mask_positions"]
    assert positions[0].tolist() == np.flatnonzero(token_ids[0] == MASK_ID).tolist()
    assert positions[1].tolist() == [-1, -1]  # no mask in the second text
    assert (served["top_token_ids"][1] == -1).all() and (served["top_probabilities"][1] == 0).all()
    top = served["top_token_ids"][0]
    assert top.shape == (2, 5) and (top >= NUM_SPECIAL_TOKENS).all()
    assert (np.diff(served["top_probabilities"][0], axis=-1) <= 0).all()
    logits = text_model(
        {
            "token_ids": tf.constant(token_ids[:1]),
            "padding_mask": tf.constant((token_ids[:1] > 0).astype(np.int32)),
            "language_ids": tf.constant([0]),
            "mask_positions": tf.constant(positions[:1]),
        },
        outputs=["masked_lm_logits"],
    )["masked_lm_logits"].numpy()[0]
    logits[:, :NUM_SPECIAL_TOKENS] = -np.inf
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_array_equal(top, np.argsort(-probabilities, axis=-1)[:, :5])
    np.testing.assert_allclose(served["top_probabilities"][0], np.sort(probabilities, -1)[:, ::-1][:, :5], atol=1e-5)
    assert served["top_tokens"][0, 0, 0].decode() == tokenizer.id_to_token(int(top[0, 0]))


def test_tag_and_classification_signatures(loaded_text, text_model):
    texts, languages = ["the cat sat", "un chien"], ["en", "fr"]
    tagged = _call(loaded_text, sig.TAG, text=texts, language=languages)
    direct = text_model(
        {
            "token_ids": tf.constant(tagged["token_ids"]),
            "padding_mask": tf.constant(tagged["padding_mask"]),
            "language_ids": tf.constant([0, 1]),
        },
        outputs=["token_logits", "sentence_logits"],
    )
    expected_tags = direct["token_logits"].numpy().argmax(-1)
    real = tagged["padding_mask"] == 1
    np.testing.assert_array_equal(tagged["tag_ids"][real], expected_tags[real])
    assert (tagged["tag_ids"][~real] == -1).all() and (tagged["tags"][~real] == b"").all()
    assert [t.decode() for t in tagged["tags"][real]] == [fixtures.TAG_NAMES[i] for i in expected_tags[real]]
    assert tagged["tokens"][0, 0] == b"[CLS]"

    classified = _call(loaded_text, sig.SENTENCE_CLASSIFICATION, text=texts, language=languages)
    logits = direct["sentence_logits"].numpy()
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(classified["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(classified["class_ids"], expected.argmax(-1))
    assert [c.decode() for c in classified["class_names"]] == [fixtures.CLASS_NAMES[i] for i in expected.argmax(-1)]

    from serving.warmup import make_example

    examples = [make_example(True, t, code).SerializeToString() for t, code in zip(texts, languages)]
    classify = _call(loaded_text, sig.CLASSIFY, inputs=examples)
    np.testing.assert_allclose(classify["scores"], classified["probabilities"], atol=1e-6)
    assert classify["classes"].tolist() == [[c.encode() for c in fixtures.CLASS_NAMES]] * 2


def test_in_graph_checks_reject_malformed_id_requests(loaded_ids):
    good = fixtures.id_batch(("en", "fr"))
    cases = {
        "Mismatched lengths: padding_mask": dict(good, padding_mask=good["padding_mask"][:, :-1]),
        "Mismatched lengths: language": dict(good, language=good["language"][:1]),
        "Empty batch": {k: v[:0] for k, v in good.items()},
        "must lie in": dict(good, token_ids=good["token_ids"] + 1000),
        "positions; the model has 12": {k: (np.tile(v, (1, 3)) if v.ndim == 2 else v) for k, v in good.items()},
        "only 0 and 1": dict(good, padding_mask=good["padding_mask"] * 2),
    }
    for message, inputs in cases.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            _call(loaded_ids, sig.SERVING_DEFAULT, **inputs)


def test_model_card_describes_the_export(text_export):
    with open(os.path.join(text_export, "model_card.md"), encoding="utf-8") as file:
        card = file.read()
    for expected in (
        "| 0 | `en` |",
        "| 2 | `sw` |",
        "adapter_attention, adapter_ffn",
        "InvalidArgument",
        "`fill_mask`",
        "mlm_accuracy/en | 0.25",
        "Not recorded with this export.",
    ):
        assert expected in card
    with open(os.path.join(text_export, "assets.extra", "languages.json"), encoding="utf-8") as file:
        languages = json.load(file)
    assert languages == {"codes": ["en", "fr", "sw"], "unknown": "error", "default_language": None}
