"""Per-example language routing: mixed batches, one-language batches, gradient isolation."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import mlm_loss, random_batch, tiny_encoder, tiny_model
from tf_metaling.models import partition_variables

KINDS = {
    "adapter": "adapter",
    "ffn": "ffn",
    "attention": "attention",
    "layer_norm": "layer_norm",
    "all": ["adapter", "attention", "ffn", "layer_norm"],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mixed_batch_equals_each_example_alone(kind):
    encoder = tiny_encoder(KINDS[kind], language_embedding=True)
    batch = random_batch()
    mixed = encoder(batch).numpy()
    for row in range(4):
        language = int(batch["language_ids"][row])
        single = {key: batch[key][row : row + 1] for key in ("token_ids", "padding_mask")}
        as_vector = encoder({**single, "language_ids": tf.constant([language])}).numpy()
        as_scalar = encoder({**single, "language_ids": tf.constant(language)}).numpy()
        np.testing.assert_allclose(mixed[row], as_vector[0], atol=1e-5)
        np.testing.assert_allclose(mixed[row], as_scalar[0], atol=1e-5)


def test_languages_really_differ():
    # Without this the test above could pass with every language sharing weights.
    encoder = tiny_encoder("adapter")
    batch = random_batch(language_ids=(0, 0, 0, 0))
    other = {**batch, "language_ids": tf.constant([1, 1, 1, 1])}
    assert np.abs(encoder(batch).numpy() - encoder(other).numpy()).max() > 1e-3


def test_one_language_batch_scalar_equals_vector():
    encoder = tiny_encoder(KINDS["all"])
    batch = random_batch(language_ids=(2, 2, 2, 2))
    scalar = {**batch, "language_ids": tf.constant(2)}
    np.testing.assert_allclose(encoder(batch).numpy(), encoder(scalar).numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("batching", ["one_language", "mixed_masked"])
def test_gradient_reaches_only_its_language(kind, batching):
    model = tiny_model(KINDS[kind], language_embedding=True)
    partition = partition_variables(model)
    k = 1
    if batching == "one_language":
        batch = random_batch(language_ids=(k, k, k, k))
        weights = None
    else:  # a mixed batch whose loss counts only language k's examples
        batch = random_batch(language_ids=(0, k, 2, k))
        weights = tf.constant([0.0, 1.0, 0.0, 1.0])
    with tf.GradientTape() as tape:
        loss = mlm_loss(model(batch), batch, weights)
    gradients = tape.gradient(loss, partition.language)
    assert partition.language
    for variable, gradient in zip(partition.language, gradients):
        dense = tf.convert_to_tensor(gradient).numpy()
        for language in range(3):
            if language == k:
                assert np.abs(dense[language]).max() > 0, f"{variable.path}: no gradient for k"
            else:
                assert np.all(dense[language] == 0.0), f"{variable.path}: gradient leaked to {language}"


def test_routed_gradients_are_sparse_rows():
    # The gather's gradient is IndexedSlices over the batch's languages: what lets the
    # optimizer update only those rows.
    model = tiny_model("adapter")
    partition = partition_variables(model)
    batch = random_batch(language_ids=(0, 2, 0, 2))
    with tf.GradientTape() as tape:
        loss = mlm_loss(model(batch), batch)
    gradients = tape.gradient(loss, partition.language)
    for gradient in gradients:
        assert isinstance(gradient, tf.IndexedSlices)
        assert set(np.unique(gradient.indices.numpy())) == {0, 2}


def test_unknown_language_id_out_of_range_fails():
    encoder = tiny_encoder("adapter")
    batch = random_batch(language_ids=(0, 1, 5, 2))
    with pytest.raises(tf.errors.InvalidArgumentError):
        encoder(batch)


def test_language_specific_needs_language_ids():
    encoder = tiny_encoder("adapter")
    batch = random_batch()
    with pytest.raises(KeyError):
        encoder({"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"]})
