"""The encoder, the task model and the language lookup as Keras citizens."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import LANGUAGES, random_batch, tiny_encoder, tiny_model
from tf_metaling.layers import LanguageLookup
from tf_metaling.models import MultilingualEncoder, MultilingualModel


def _functional_classifier(encoder):
    """A user's own functional model: strings for languages, our encoder, their head."""
    token_ids = keras.Input(shape=(7,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(7,), dtype="int32", name="padding_mask")
    language = keras.Input(shape=(), dtype="string", name="language")
    language_ids = LanguageLookup(list(LANGUAGES))(language)
    sequence = encoder({"token_ids": token_ids, "padding_mask": padding_mask, "language_ids": language_ids})
    pooled = keras.layers.GlobalAveragePooling1D()(sequence)
    logits = keras.layers.Dense(2)(pooled)
    return keras.Model([token_ids, padding_mask, language], logits)


def _user_inputs():
    batch = random_batch()
    codes = np.array([LANGUAGES[i] for i in batch["language_ids"].numpy()], dtype=object)
    return [batch["token_ids"].numpy(), batch["padding_mask"].numpy(), codes]


def test_encoder_config_round_trip():
    encoder = tiny_encoder(["adapter", "layer_norm"], language_embedding=True, normalize_first=True)
    config = encoder.get_config()
    restored = MultilingualEncoder.from_config(config)
    assert restored.get_config() == config
    assert len(restored.weights) == len(encoder.weights)


def test_encoder_in_users_functional_model_fit_and_keras_file(tmp_path):
    model = _functional_classifier(tiny_encoder("adapter"))
    inputs = _user_inputs()
    labels = np.array([0, 1, 1, 0])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(True))
    first = model.fit(inputs, labels, epochs=1, verbose=0).history["loss"][0]
    last = model.fit(inputs, labels, epochs=5, verbose=0).history["loss"][-1]
    assert last < first
    expected = model.predict(inputs, verbose=0)
    path = os.path.join(tmp_path, "user_model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), expected, atol=1e-6)


def test_multilingual_model_keras_file_round_trip(tmp_path):
    model = tiny_model(["adapter", "ffn"])
    model = MultilingualModel(model.encoder, token_class_names=["O", "B-PER"], sentence_class_names=["a", "b"])
    batch = random_batch()
    expected = model(batch)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.sentence_class_names == ["a", "b"]
    actual = reloaded(batch)
    for name in expected:
        np.testing.assert_allclose(actual[name].numpy(), expected[name].numpy(), atol=1e-6)


def test_language_lookup_in_model_reports_unknown_language():
    model = _functional_classifier(tiny_encoder("adapter"))
    inputs = _user_inputs()
    inputs[2] = np.array(["en", "fr", "xx", "sw"], dtype=object)
    with pytest.raises(tf.errors.InvalidArgumentError, match="xx"):
        model(inputs)


def test_language_lookup_config_round_trip():
    layer = LanguageLookup({"codes": ["en", "sw"], "unknown": "default", "default_language": "en"})
    restored = LanguageLookup.from_config(layer.get_config())
    assert restored(tf.constant(["sw", "zz"])).numpy().tolist() == [1, 0]
