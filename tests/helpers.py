"""Tiny models and batches shared by the tests."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_metaling.models import MultilingualEncoder, MultilingualModel

LANGUAGES = ("en", "fr", "sw")


def tiny_encoder(language_specific="adapter", dtype="float32", languages=LANGUAGES, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    kwargs = dict(
        vocabulary_size=40,
        languages=list(languages),
        hidden_dim=8,
        num_layers=2,
        num_heads=2,
        intermediate_dim=16,
        max_sequence_length=12,
        language_specific=language_specific,
        adapter_dim=4,
        adapter_activation="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        # A wider initialisation than BERT's 0.02 so that every weight has a
        # visible effect in float64 derivative checks.
        initializer_range=0.5,
        dtype=dtype,
    )
    kwargs.update(overrides)
    return MultilingualEncoder(**kwargs)


def tiny_model(language_specific="adapter", dtype="float32", **overrides):
    encoder = tiny_encoder(language_specific, dtype=dtype, **overrides)
    return MultilingualModel(encoder, head_dropout=0.0)


def random_batch(batch=4, length=7, language_ids=(0, 2, 1, 2), vocabulary_size=40, predictions=3, seed=1):
    rng = np.random.RandomState(seed)
    token_ids = rng.randint(5, vocabulary_size, size=(batch, length)).astype("int32")
    padding_mask = np.ones((batch, length), "int32")
    for row in range(batch):  # ragged lengths: pad the tail of some rows
        pad = row % 3
        if pad:
            token_ids[row, -pad:] = 0
            padding_mask[row, -pad:] = 0
    positions = np.stack([rng.choice(length - 2, size=predictions, replace=False) for _ in range(batch)])
    return {
        "token_ids": tf.constant(token_ids),
        "padding_mask": tf.constant(padding_mask),
        "language_ids": tf.constant(np.asarray(language_ids, "int32")),
        "mask_positions": tf.constant(positions.astype("int32")),
        "mask_ids": tf.constant(rng.randint(5, vocabulary_size, size=(batch, predictions)).astype("int32")),
    }


def mlm_loss(outputs, batch, example_weights=None):
    """Mean masked-LM cross-entropy over the batch's predictions (optionally weighted per example)."""
    logits = outputs["masked_lm_logits"]
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["mask_ids"], logits=logits)
    if example_weights is not None:
        losses = losses * tf.cast(example_weights, losses.dtype)[:, None]
    return tf.reduce_mean(losses)


def study_config(name: str, overrides: dict):
    """The registered study `name` with `overrides` (a nested dict of its fields), validated."""
    from official.modeling import hyperparams

    from tf_metaling import configs

    return configs.validate_study(hyperparams.override_params_dict(configs.get_study(name), overrides,
                                                                   is_strict=True))


def split_across_replicas(strategy, batch):
    """A global `batch` as a distributed value: replica r gets the r-th equal slice of every entry."""
    replicas = strategy.num_replicas_in_sync

    def value_fn(context):
        index = context.replica_id_in_sync_group
        return {key: tf.split(value, replicas)[index] for key, value in batch.items()}

    return strategy.experimental_distribute_values_from_function(value_fn)


def directional_meta_gradient(step, lookahead, meta, language: int, eps: float = 1e-5, seed: int = 0):
    """``(analytic, numeric)``: the meta-gradient of phi_language along a random unit direction, exact and by
    central finite differences of the meta objective (PAPER.md section 4)."""
    partition = step.partition
    shared = [v.value for v in partition.shared]
    phi = [tf.convert_to_tensor(v) for v in partition.language]
    _, rows = step.meta_gradient(lookahead, meta, tf.constant(language), shared, phi)
    rng = np.random.RandomState(seed)
    directions = [rng.normal(size=v.shape[1:]) for v in partition.language]
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in directions))
    directions = [d / norm for d in directions]
    analytic = sum(float(np.sum(r.numpy() * d)) for r, d in zip(rows, directions))

    def objective(scale):
        shifted = []
        for value, direction in zip(phi, directions):
            delta = np.zeros(value.shape)
            delta[language] = scale * direction
            shifted.append(value + tf.constant(delta, value.dtype))
        return float(step.meta_objective(lookahead, meta, tf.constant(language), shared, shifted))

    return analytic, (objective(eps) - objective(-eps)) / (2 * eps)
