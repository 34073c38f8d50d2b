"""Two replicas (two logical CPUs under MirroredStrategy) give the single-device result."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import random_batch, split_across_replicas, tiny_model
from tf_metaling.losses import masked_lm_example_losses
from tf_metaling.meta.meta_step import MetaOptions, MetaStep
from tf_metaling.models import partition_variables
from tf_metaling.optimizers import RowSparseAdam

KINDS = ["adapter", "layer_norm"]


def mlm_losses(outputs, batch):
    return masked_lm_example_losses(outputs["masked_lm_logits"], batch)


def _build(strategy, options):
    with strategy.scope():
        model = tiny_model(KINDS, language_embedding=True, seed=0, num_layers=1)
        shared = RowSparseAdam(1e-2)
        shared.build(model.trainable_variables)
        meta = RowSparseAdam(1e-2)
        meta.build(list(partition_variables(model).language))
    return MetaStep(model, mlm_losses, shared, meta, options, clip_norm=1.0, output_names=("masked_lm_logits",))


def _global_batches(step_index):
    k = step_index % 3
    train = random_batch(batch=4, language_ids=(k,) * 4, seed=100 + step_index)
    lookahead = random_batch(batch=4, language_ids=(k,) * 4, seed=200 + step_index)
    meta = random_batch(batch=6, language_ids=(0, 1, 2, 0, 1, 2), seed=300 + step_index)
    return train, lookahead, meta, k


@pytest.mark.parametrize(
    "options",
    [
        MetaOptions(inner_learning_rate=0.1),
        MetaOptions(first_order=True, exclude_current_language=True),
        MetaOptions(inner_learning_rate=0.1, reuse_ordinary_gradient=True),
    ],
    ids=["exact", "first_order_exclude_k", "reuse_gradient"],
)
def test_two_replicas_equal_one_device(options, two_cpu_devices, mirrored_strategy):
    single = _build(tf.distribute.OneDeviceStrategy(two_cpu_devices[0]), options)
    mirrored = _build(mirrored_strategy, options)
    for a, b in zip(single.model.weights, mirrored.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # Eager: tracing the second-order graph twice costs far more than three eager
    # steps; the traced path is covered by the trainer tests (tests/training).
    single_fn = single.meta_step

    def mirrored_fn(train, lookahead, meta, language):
        results = mirrored_strategy.run(mirrored.meta_step, args=(train, lookahead, meta, language))
        return mirrored_strategy.experimental_local_results(results)[0]

    for step_index in range(3):
        train, lookahead, meta, k = _global_batches(step_index)
        expected = single_fn(train, lookahead, meta, tf.constant(k))
        actual = mirrored_fn(
            split_across_replicas(mirrored_strategy, train),
            split_across_replicas(mirrored_strategy, lookahead),
            split_across_replicas(mirrored_strategy, meta),
            tf.constant(k),
        )
        np.testing.assert_allclose(float(actual["loss"]), float(expected["loss"]), rtol=1e-5)
        np.testing.assert_allclose(float(actual["meta_loss"]), float(expected["meta_loss"]), rtol=1e-5)
    for a, b in zip(single.model.trainable_weights, mirrored.model.trainable_weights):
        # atol: some gradients are exactly zero in theory (the attention key bias cancels in
        # the softmax) and Adam scales their rounding noise up to ~1e-6 steps.
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    # The LS rows of every language that was k moved; training did something.
    start = tiny_model(KINDS, language_embedding=True, seed=0, num_layers=1)
    moved = [not np.allclose(a.numpy(), s.numpy()) for a, s in zip(single.model.trainable_weights, start.trainable_weights)]
    assert all(moved)


@pytest.mark.slow
@pytest.mark.parametrize("first_order", [False, True], ids=["exact", "first_order"])
def test_meta_step_compiles_with_xla_and_matches_graph_mode(first_order):
    # TPUs run the step through XLA: it must compile (the row gathers and the first-order
    # split of the held-out batch have bounded shapes) and give the same update.
    options = MetaOptions(inner_learning_rate=0.1, first_order=first_order)
    compiled = _build(tf.distribute.get_strategy(), options)
    plain = _build(tf.distribute.get_strategy(), options)
    train, lookahead, meta, k = _global_batches(1)
    expected = tf.function(plain.meta_step, autograph=False)(train, lookahead, meta, tf.constant(k))
    actual = tf.function(compiled.meta_step, autograph=False, jit_compile=True)(train, lookahead, meta, tf.constant(k))
    np.testing.assert_allclose(float(actual["meta_loss"]), float(expected["meta_loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(actual["loss"]), float(expected["loss"]), rtol=1e-5)
    for a, b in zip(compiled.model.trainable_weights, plain.model.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
