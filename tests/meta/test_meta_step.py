"""The meta step: exact meta-gradients against finite differences and a closed form.

PAPER.md section 4: theta' = theta - alpha * grad_theta L_k(theta, phi_k) on a
look-ahead batch; M = mean over languages of L_l(theta', phi_l) on a mixed
held-out batch; the meta update moves phi_k only, along grad_{phi_k} M
(second order), or without the Hessian-vector term in first-order mode.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import directional_meta_gradient, random_batch, tiny_model
from tf_metaling.layers import LanguageRoutedLayer
from tf_metaling.losses import masked_lm_example_losses, mean_loss
from tf_metaling.meta.meta_step import MetaOptions, MetaStep
from tf_metaling.optimizers import RowSparseAdam

ALL_KINDS = ["adapter", "attention", "ffn", "layer_norm"]
K = 1  # the language of the look-ahead batch


def mlm_losses(outputs, batch):
    return masked_lm_example_losses(outputs["masked_lm_logits"], batch)


def _mlm_step(options, dtype="float64", **model_kwargs):
    model = tiny_model(ALL_KINDS, dtype=dtype, language_embedding=True, **model_kwargs)
    return MetaStep(
        model, mlm_losses, keras.optimizers.SGD(0.1), RowSparseAdam(1e-2), options,
        output_names=("masked_lm_logits",),
    )


def _batches():
    lookahead = random_batch(language_ids=(K, K, K, K), seed=11)
    meta = random_batch(batch=6, language_ids=(0, 0, 1, 1, 2, 2), seed=12)
    return lookahead, meta


@pytest.mark.parametrize("exclude", [False, True])
def test_exact_meta_gradient_matches_finite_differences(exclude):
    step = _mlm_step(MetaOptions(inner_learning_rate=0.5, exclude_current_language=exclude))
    lookahead, meta = _batches()
    analytic, numeric = directional_meta_gradient(step, lookahead, meta, K)
    assert abs(analytic) > 1e-4
    assert abs(analytic - numeric) / abs(numeric) < 1e-4, (analytic, numeric)


def test_second_order_term_matters():
    # Otherwise the finite-difference test could not tell exact from first order.
    lookahead, meta = _batches()
    exact = _mlm_step(MetaOptions(inner_learning_rate=0.5))
    first = _mlm_step(MetaOptions(inner_learning_rate=0.5, first_order=True))
    _, exact_rows = exact.meta_gradient(lookahead, meta, tf.constant(K))
    _, first_rows = first.meta_gradient(lookahead, meta, tf.constant(K))
    difference = tf.linalg.global_norm([a - b for a, b in zip(exact_rows, first_rows)])
    assert float(difference) > 1e-3 * float(tf.linalg.global_norm(exact_rows))


def _first_order_reference(step, lookahead, meta):
    """grad_{phi_K} M with g constant, differentiating the whole mixed batch (no row split)."""
    shared = [tf.convert_to_tensor(v) for v in step.partition.shared]
    phi = [tf.convert_to_tensor(v) for v in step.partition.language]
    with tf.GradientTape() as tape:
        tape.watch(shared)
        lookahead_loss = mean_loss(*step._losses(lookahead, shared, phi))
    g = tape.gradient(lookahead_loss, shared)
    looked_ahead = step._look_ahead(shared, [tf.convert_to_tensor(x) for x in g])
    with tf.GradientTape() as tape:
        tape.watch(phi)
        meta_loss = step._meta_loss(meta, looked_ahead, phi, tf.constant(K))
    return meta_loss, [tf.gather(tf.convert_to_tensor(x), K) for x in tape.gradient(meta_loss, phi)]


@pytest.mark.parametrize(
    "languages",
    [(0, 0, 1, 1, 2, 2), (1, 0, 2, 1, 0, 2), (0, 2, 2, 0, 2, 0), (1, 1, 1, 1, 1, 1)],
    ids=["grouped", "interleaved", "no_row_of_k", "only_k"],
)
def test_first_order_differentiates_only_own_rows_and_matches_the_whole_batch(languages):
    # First order splits the held-out batch into k's rows (differentiated) and the rest
    # (not): same meta loss and same gradient as differentiating the whole batch, also
    # when no row, or every row, is language k's.
    step = _mlm_step(MetaOptions(inner_learning_rate=0.5, first_order=True))
    lookahead = random_batch(language_ids=(K, K, K, K), seed=11)
    meta = random_batch(batch=6, language_ids=languages, seed=12)
    expected_loss, expected_rows = _first_order_reference(step, lookahead, meta)
    meta_loss, rows = step.meta_gradient(lookahead, meta, tf.constant(K))
    np.testing.assert_allclose(float(meta_loss), float(expected_loss), rtol=1e-12)
    for row, expected in zip(rows, expected_rows):
        np.testing.assert_allclose(row.numpy(), expected.numpy(), rtol=1e-9, atol=1e-13)
    norm = float(tf.linalg.global_norm(rows))
    if K in languages:
        assert norm > 1e-4
    else:
        assert norm == 0.0


def test_meta_update_moves_only_phi_k():
    step = _mlm_step(MetaOptions(inner_learning_rate=0.5), dtype="float32")
    lookahead, meta = _batches()
    model = step.model
    before = [v.numpy().copy() for v in model.weights]
    language = {id(v) for v in step.partition.language}
    step.meta_update(lookahead, meta, tf.constant(K))
    for variable, old in zip(model.weights, before):
        if id(variable) in language:
            for row in range(3):
                changed = not np.array_equal(variable.numpy()[row], old[row])
                assert changed == (row == K), (variable.path, row)
        elif variable.trainable:
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=f"theta moved: {variable.path}")


def test_clip_applies_to_phi_k_after_selection():
    # SGD(1.0) on the meta side: the update of row k is exactly -clip(grad_phi_k).
    model = tiny_model(ALL_KINDS, language_embedding=True)
    clip = 1e-3
    step = MetaStep(model, mlm_losses, keras.optimizers.SGD(0.1), keras.optimizers.SGD(1.0),
                    MetaOptions(inner_learning_rate=0.5, clip_norm=clip), output_names=("masked_lm_logits",))
    lookahead, meta = _batches()
    _, rows = step.meta_gradient(lookahead, meta, tf.constant(K))
    raw_norm = float(tf.linalg.global_norm(rows))
    assert raw_norm > clip
    before = [v.numpy().copy() for v in step.partition.language]
    step.meta_update(lookahead, meta, tf.constant(K))
    deltas = [v.numpy()[K] - b[K] for v, b in zip(step.partition.language, before)]
    np.testing.assert_allclose(np.sqrt(sum(float(np.sum(d * d)) for d in deltas)), clip, rtol=1e-3)
    for delta, row in zip(deltas, rows):
        np.testing.assert_allclose(delta, -row.numpy() * clip / raw_norm, rtol=1e-3, atol=1e-7)


# ----------------------------------------------------------------- linear model, closed form
@keras.saving.register_keras_serializable(package="tests")
class LinearWithLanguageBias(LanguageRoutedLayer):
    """y = x W + b_l: W shared (theta), b_l per language (phi)."""

    def __init__(self, units, num_languages, **kwargs):
        super().__init__(num_languages=num_languages, **kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.bias = self.add_routed_weight("bias", (self.units,), keras.initializers.RandomNormal(stddev=1.0))

    def call(self, inputs, language_ids):
        return tf.matmul(inputs, self.kernel) + self.select_for_languages(self.bias, language_ids)


class LinearModel(keras.Model):
    def __init__(self, units, num_languages, **kwargs):
        super().__init__(**kwargs)
        self.linear = LinearWithLanguageBias(units, num_languages, dtype="float64")

    def call(self, batch, training=None):
        return {"prediction": self.linear(batch["x"], batch["language_ids"])}


def squared_losses(outputs, batch):
    residual = outputs["prediction"] - batch["t"]
    return 0.5 * tf.reduce_sum(residual * residual, axis=1), tf.ones_like(residual[:, 0])


def _linear_setup(first_order):
    keras.utils.set_random_seed(3)
    rng = np.random.RandomState(4)
    d_in, d_out, languages = 3, 2, 3
    model = LinearModel(d_out, languages)
    model({"x": tf.zeros((1, d_in), tf.float64), "language_ids": tf.zeros((1,), tf.int32)})
    alpha = 0.3
    step = MetaStep(model, squared_losses, keras.optimizers.SGD(0.1), keras.optimizers.SGD(1.0),
                    MetaOptions(inner_learning_rate=alpha, first_order=first_order))
    lookahead = {"x": tf.constant(rng.normal(size=(5, d_in))), "t": tf.constant(rng.normal(size=(5, d_out))),
                 "language_ids": tf.constant([K] * 5)}
    meta = {"x": tf.constant(rng.normal(size=(7, d_in))), "t": tf.constant(rng.normal(size=(7, d_out))),
            "language_ids": tf.constant([0, 0, 1, 1, 1, 2, 2])}
    return model, step, lookahead, meta, alpha


def _closed_form(model, lookahead, meta, alpha):
    W = model.linear.kernel.numpy()
    B = model.linear.bias.numpy()
    X, T = lookahead["x"].numpy(), lookahead["t"].numpy()
    n = len(X)
    g = X.T @ (X @ W + B[K] - T) / n  # grad_W L_k
    W1 = W - alpha * g
    Xm, Tm, lm = meta["x"].numpy(), meta["t"].numpy(), meta["language_ids"].numpy()
    present = sorted(set(lm))
    grad_W1 = np.zeros_like(W)
    direct = np.zeros(B.shape[1])
    for language in present:
        rows = lm == language
        residual = Xm[rows] @ W1 + B[language] - Tm[rows]
        grad_W1 += Xm[rows].T @ residual / rows.sum() / len(present)
        if language == K:
            direct = residual.sum(axis=0) / rows.sum() / len(present)
    # d g / d b_k = (1/n) X^T 1 (outer) I  =>  the Hessian-vector term:
    second = -alpha * grad_W1.T @ X.sum(axis=0) / n
    return direct, second


@pytest.mark.parametrize("first_order", [False, True])
def test_linear_model_meta_gradient_closed_form(first_order):
    model, step, lookahead, meta, alpha = _linear_setup(first_order)
    direct, second = _closed_form(model, lookahead, meta, alpha)
    assert np.abs(second).max() > 1e-3  # the Hessian-vector term is not negligible here
    _, rows = step.meta_gradient(lookahead, meta, tf.constant(K))
    (bias_row,) = rows
    expected = direct if first_order else direct + second
    np.testing.assert_allclose(bias_row.numpy(), expected, rtol=1e-10, atol=1e-12)
