"""PCGrad and GradVac on hand-built gradients, against the formulas computed in numpy."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.meta.gradient_surgery import (
    gradvac,
    gradvac_coefficients,
    gram_matrix,
    pcgrad,
    visiting_orders,
)


def numpy_pcgrad(gradients, orders):
    """PAPER.md section 6, literally: project g_i' off each conflicting original g_j in turn; sum."""
    combined = np.zeros_like(gradients[0])
    for i, g in enumerate(gradients):
        g = g.copy()
        for j in orders[i]:
            dot = g @ gradients[j]
            if dot < 0:
                g = g - dot / (gradients[j] @ gradients[j]) * gradients[j]
        combined += g
    return combined


def numpy_gradvac(gradients, targets, beta, orders):
    """PAPER.md section 6, literally; returns (combined, new targets, the changed g_i')."""
    targets = targets.copy()
    changed = []
    for i, g in enumerate(gradients):
        g = g.copy()
        for j in orders[i]:
            other = gradients[j]
            phi = g @ other / (np.linalg.norm(g) * np.linalg.norm(other))
            t = targets[i, j]
            if phi < t:
                g = g + other * np.linalg.norm(g) * (t * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - t**2)) / (
                    np.linalg.norm(other) * np.sqrt(1 - t**2))
            targets[i, j] = (1 - beta) * t + beta * phi
        changed.append(g)
    return np.sum(changed, axis=0), targets, changed


# Three languages in R^4: g0 conflicts with g1 and g2, g1 and g2 agree.
CONFLICTING = np.array([
    [1.0, 2.0, -1.0, 0.5],
    [-1.5, 0.5, 1.0, 0.0],
    [-0.5, -1.0, 0.3, 2.0],
])
ORDERS = np.array([[2, 1], [0, 2], [1, 0]], np.int32)


def cosine(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def test_pcgrad_on_conflicting_gradients_equals_the_formula():
    assert CONFLICTING[0] @ CONFLICTING[1] < 0 and CONFLICTING[0] @ CONFLICTING[2] < 0
    expected = numpy_pcgrad(CONFLICTING, ORDERS)
    assert not np.allclose(expected, CONFLICTING.sum(0))  # the surgery did something
    actual = pcgrad(tf.constant(CONFLICTING), tf.constant(ORDERS))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12)
    # The order matters (g0 is projected off g2 first): another order, another result.
    other_orders = np.array([[1, 2], [0, 2], [1, 0]], np.int32)
    np.testing.assert_allclose(pcgrad(tf.constant(CONFLICTING), tf.constant(other_orders)).numpy(),
                               numpy_pcgrad(CONFLICTING, other_orders), rtol=1e-12)


def test_pcgrad_without_conflict_is_the_plain_sum():
    agreeing = np.abs(CONFLICTING)
    actual = pcgrad(tf.constant(agreeing, tf.float32), tf.constant(ORDERS))
    np.testing.assert_array_equal(actual.numpy(), agreeing.astype(np.float32).sum(0))


def test_pcgrad_leaves_a_language_without_gradient_alone():
    gradients = CONFLICTING.copy()
    gradients[1] = 0.0  # language 1 is absent from the batch
    actual = pcgrad(tf.constant(gradients), tf.constant(ORDERS)).numpy()
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, numpy_pcgrad(gradients[[0, 2]], np.array([[1], [0]])), rtol=1e-12)


def test_gradvac_raises_the_cosine_exactly_to_its_target():
    g0, g1 = np.array([1.0, 0.2, -0.4]), np.array([-0.6, 1.0, 0.3])
    assert cosine(g0, g1) < 0.3
    gradients = np.stack([g0, g1])
    targets = np.array([[0.0, 0.3], [0.3, 0.0]])
    orders = np.array([[1], [0]], np.int32)
    coefficients, new_targets, observed = gradvac_coefficients(
        tf.constant(gram_matrix(tf.constant(gradients))), tf.constant(targets), 0.01, tf.constant(orders))
    changed = coefficients.numpy() @ gradients  # g_i' = sum_m C[i, m] g_m
    assert cosine(changed[0], g1) == pytest.approx(0.3, abs=1e-12)
    assert cosine(changed[1], g0) == pytest.approx(0.3, abs=1e-12)
    phi = cosine(g0, g1)
    np.testing.assert_allclose(observed.numpy(), [[np.nan, phi], [phi, np.nan]], rtol=1e-12)
    moved = 0.99 * 0.3 + 0.01 * phi
    np.testing.assert_allclose(new_targets.numpy(), [[0.0, moved], [moved, 0.0]], rtol=1e-12)
    combined, _ = gradvac(tf.constant(gradients), tf.constant(targets), 0.01, tf.constant(orders))
    np.testing.assert_allclose(combined.numpy(), changed.sum(0), rtol=1e-12)


def test_gradvac_leaves_pairs_above_their_target_alone():
    g0, g1 = np.array([1.0, 0.2, -0.4]), np.array([-0.6, 1.0, 0.3])
    phi = cosine(g0, g1)
    targets = np.array([[0.0, phi - 0.1], [phi - 0.1, 0.0]])
    combined, new_targets = gradvac(tf.constant(np.stack([g0, g1])), tf.constant(targets), 0.5,
                                    tf.constant([[1], [0]]))
    np.testing.assert_allclose(combined.numpy(), g0 + g1, rtol=1e-12)
    # The EMA still moves towards what it observed.
    np.testing.assert_allclose(new_targets.numpy()[0, 1], 0.5 * (phi - 0.1) + 0.5 * phi, rtol=1e-12)


def test_gradvac_with_three_languages_equals_the_formula():
    rng = np.random.RandomState(0)
    targets = rng.uniform(-0.2, 0.6, (3, 3))
    expected, expected_targets, _ = numpy_gradvac(CONFLICTING, targets, 0.1, ORDERS)
    actual, actual_targets = gradvac(tf.constant(CONFLICTING), tf.constant(targets), 0.1, tf.constant(ORDERS))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-10)
    off_diagonal = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(actual_targets.numpy()[off_diagonal], expected_targets[off_diagonal],
                               rtol=1e-10)


def test_gradvac_per_group_is_each_group_on_its_own():
    # Two groups (a leading axis): the same as two separate calls.
    rng = np.random.RandomState(1)
    first, second = rng.normal(size=(3, 5)), rng.normal(size=(3, 7))
    targets = rng.uniform(0.0, 0.5, (2, 3, 3))
    grams = tf.stack([gram_matrix(tf.constant(first)), gram_matrix(tf.constant(second))])
    coefficients, new_targets, _ = gradvac_coefficients(grams, tf.constant(targets), 0.2, tf.constant(ORDERS))
    for group, gradients in enumerate((first, second)):
        expected, expected_targets, _ = numpy_gradvac(gradients, targets[group], 0.2, ORDERS)
        np.testing.assert_allclose(coefficients.numpy()[group].sum(0) @ gradients, expected, rtol=1e-10)
        np.testing.assert_allclose(new_targets.numpy()[group][~np.eye(3, dtype=bool)],
                                   expected_targets[~np.eye(3, dtype=bool)], rtol=1e-10)


def test_visiting_orders_are_seeded_permutations_of_the_other_languages():
    orders = visiting_orders(5, seed=3, step=7).numpy()
    for i, row in enumerate(orders):
        assert sorted(row) == [j for j in range(5) if j != i]
    np.testing.assert_array_equal(visiting_orders(5, seed=3, step=7).numpy(), orders)
    draws = {visiting_orders(5, seed=3, step=step).numpy().tobytes() for step in range(10)}
    assert len(draws) > 5  # a new order at (almost) every step
