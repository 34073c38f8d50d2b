"""Fast weights: forward equality, first and second derivatives against finite differences.

All derivative checks run on tiny float64 models with central differences, and
compare directional derivatives (random unit directions), which exercises
every weight of a set at once.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import mlm_loss, random_batch, tiny_model
from tf_metaling.layers import LayerNorm
from tf_metaling.meta.fast_weights import call_with_weights
from tf_metaling.models import partition_variables

EPS = 1e-5
KINDS = {
    "adapter": "adapter",
    "ffn": "ffn",
    "attention": "attention",
    "layer_norm": "layer_norm",
    "whole_encoder_all_kinds": ["adapter", "attention", "ffn", "layer_norm"],
}


def _directions(variables, seed):
    rng = np.random.RandomState(seed)
    directions = [rng.normal(size=v.shape) for v in variables]
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in directions))
    return [tf.constant(d / norm, tf.float64) for d in directions]


def _dot(xs, ys):
    return tf.add_n([tf.reduce_sum(tf.convert_to_tensor(x) * y) for x, y in zip(xs, ys)])


def _shift(values, directions, scale):
    return [tf.convert_to_tensor(v) + scale * d for v, d in zip(values, directions)]


def _setup(kind):
    model = tiny_model(KINDS[kind], dtype="float64", language_embedding=(kind != "layer_norm"))
    partition = partition_variables(model)
    batch = random_batch()
    shared = [v.value for v in partition.shared]
    language = [v.value for v in partition.language]

    def loss_fn(shared_values, language_values):
        outputs = call_with_weights(model, partition, shared_values, language_values, batch)
        return mlm_loss(outputs, batch)

    return model, partition, batch, shared, language, loss_fn


def test_fast_forward_equals_normal_forward():
    model = tiny_model(KINDS["whole_encoder_all_kinds"])
    partition = partition_variables(model)
    batch = random_batch()
    normal = model(batch)
    fast = call_with_weights(
        model, partition, [v.value for v in partition.shared], [v.value for v in partition.language], batch
    )
    for name in normal:
        np.testing.assert_array_equal(normal[name].numpy(), fast[name].numpy())


def test_fast_forward_inside_tf_function_uses_substituted_weights():
    model = tiny_model("adapter")
    partition = partition_variables(model)
    batch = random_batch()

    @tf.function
    def forward(scale):
        shared = [v.value * scale for v in partition.shared]
        return call_with_weights(model, partition, shared, None, batch)["sequence_output"]

    same = forward(tf.constant(1.0))
    np.testing.assert_allclose(same.numpy(), model(batch)["sequence_output"].numpy(), atol=1e-6)
    assert np.abs(forward(tf.constant(0.5)).numpy() - same.numpy()).max() > 1e-3
    # The variables were not changed by the substituted call.
    np.testing.assert_allclose(forward(tf.constant(1.0)).numpy(), same.numpy(), atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradient_wrt_substituted_weights_matches_finite_differences(kind):
    _, partition, _, shared, language, loss_fn = _setup(kind)
    for which, values in (("shared", shared), ("language", language)):
        values = [tf.convert_to_tensor(v) for v in values]
        directions = _directions(values, seed=3)
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = loss_fn(values, language) if which == "shared" else loss_fn(shared, values)
        analytic = float(_dot(tape.gradient(loss, values), directions))

        def at(scale):
            shifted = _shift(values, directions, scale)
            return float(loss_fn(shifted, language) if which == "shared" else loss_fn(shared, shifted))

        numeric = (at(EPS) - at(-EPS)) / (2 * EPS)
        assert abs(analytic) > 1e-6
        assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (which, analytic, numeric)


def _gradient(loss_fn, shared, language, wrt):
    shared = [tf.convert_to_tensor(v) for v in shared]
    language = [tf.convert_to_tensor(v) for v in language]
    with tf.GradientTape() as tape:
        tape.watch(shared + language)
        loss = loss_fn(shared, language)
    return [tf.convert_to_tensor(g) for g in tape.gradient(loss, shared if wrt == "shared" else language)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_second_derivatives_match_finite_differences(kind):
    _, partition, _, shared, language, loss_fn = _setup(kind)
    shared = [tf.convert_to_tensor(v) for v in shared]
    language = [tf.convert_to_tensor(v) for v in language]
    u = _directions(shared, seed=5)

    # Second-order terms by double differentiation: H_theta,theta u and H_phi,theta u.
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(shared + language)
        with tf.GradientTape() as inner:
            inner.watch(shared)
            loss = loss_fn(shared, language)
        directional = _dot(inner.gradient(loss, shared), u)
    hvp = [tf.convert_to_tensor(g) for g in outer.gradient(directional, shared)]
    mixed = [tf.convert_to_tensor(g) for g in outer.gradient(directional, language)]

    # The same terms by differencing first derivatives along u.
    plus_shared = _gradient(loss_fn, _shift(shared, u, EPS), language, "shared")
    minus_shared = _gradient(loss_fn, _shift(shared, u, -EPS), language, "shared")
    plus_language = _gradient(loss_fn, _shift(shared, u, EPS), language, "language")
    minus_language = _gradient(loss_fn, _shift(shared, u, -EPS), language, "language")
    for analytic, plus, minus, name in (
        (hvp, plus_shared, minus_shared, "Hessian-vector product"),
        (mixed, plus_language, minus_language, "mixed shared/language derivative"),
    ):
        numeric = [(p - m) / (2 * EPS) for p, m in zip(plus, minus)]
        scale = max(float(tf.linalg.global_norm(numeric)), 1e-12)
        error = float(tf.linalg.global_norm([a - n for a, n in zip(analytic, numeric)]))
        assert scale > 1e-6, f"{name}: vanishing second derivative, check is vacuous"
        assert error / scale < 1e-5, f"{kind}: {name} relative error {error / scale:.2e}"


def _layer_norm_hvp_error(norm_layer):
    """Relative error of a layer norm's Hessian-vector product w.r.t. its input."""
    rng = np.random.RandomState(0)
    x = tf.constant(rng.normal(size=(3, 8)), tf.float64)
    target = tf.constant(rng.normal(size=(3, 8)), tf.float64)
    u = tf.constant(rng.normal(size=(3, 8)), tf.float64)

    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(norm_layer(x)) * target)
        return tape.gradient(loss, x)

    with tf.GradientTape() as outer:
        outer.watch(x)
        directional = tf.reduce_sum(gradient(x) * u)
    analytic = outer.gradient(directional, x)
    numeric = (gradient(x + EPS * u) - gradient(x - EPS * u)) / (2 * EPS)
    return float(tf.norm(analytic - numeric) / tf.norm(numeric))


def test_keras_layer_normalization_fails_second_derivatives_ours_does_not():
    ours = LayerNorm(epsilon=1e-6, dtype="float64")
    keras_norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype="float64")
    assert _layer_norm_hvp_error(ours) < 1e-6
    assert _layer_norm_hvp_error(keras_norm) > 1e-3  # the known TF-backend defect


def test_encoder_uses_no_keras_layer_normalization():
    model = tiny_model(KINDS["whole_encoder_all_kinds"])
    offenders = [
        layer.path for layer in model._flatten_layers() if isinstance(layer, keras.layers.LayerNormalization)
    ]
    assert offenders == []
