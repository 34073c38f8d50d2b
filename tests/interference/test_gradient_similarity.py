"""Gradient similarity: against a hand computation, its invariants, grouping and bad input."""

import numpy as np
import pytest

from tests.helpers import tiny_model
from tests.interference.fixtures import batches_by_language, hand_cosine, hand_gradient, language_batch
from tf_metaling.interference import GradientSimilarity, GradientSimilarityFunction, gradient_similarity, layer_groups
from tf_metaling.models import partition_variables


@pytest.fixture(scope="module")
def adapter_model():
    return tiny_model("adapter")


def test_cosine_matrix_equals_hand_computation(adapter_model):
    """Every entry, overall and per layer group, equals numpy cosines of eager per-language gradients.

    The library computes one-language batches through the scalar-id path in a
    tf.function; the hand computation runs the per-example-id path eagerly. "en"
    has two batches: its gradient is their mean.
    """
    model = adapter_model
    batches = batches_by_language()
    batches["en"] = [batches["en"], language_batch(0, seed=99)]
    result = gradient_similarity(model, batches)

    groups = layer_groups(model)
    hand = {code: hand_gradient(model, b if isinstance(b, list) else [b]) for code, b in batches.items()}
    codes = list(batches)
    assert result.languages == tuple(codes)
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            assert result.overall[i, j] == pytest.approx(hand_cosine(hand[a], hand[b]), abs=2e-5)
    assert set(result.groups) == set(groups.names)  # the MLM loss reaches every group
    for name in result.groups:
        members = groups.members[groups.index(name)]
        for i, a in enumerate(codes):
            for j, b in enumerate(codes):
                expected = hand_cosine([hand[a][k] for k in members], [hand[b][k] for k in members])
                assert result.matrix(name)[i, j] == pytest.approx(expected, abs=2e-5), (name, a, b)
    for i, code in enumerate(codes):
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in hand[code]))
        assert result.overall_norms[i] == pytest.approx(norm, rel=1e-4)
    # Not a degenerate case: the languages' gradients really differ.
    assert np.max(np.abs(result.overall - 1.0)) > 0.1


def test_matrix_is_symmetric_with_unit_diagonal(adapter_model):
    result = gradient_similarity(adapter_model, batches_by_language())
    for matrix in [result.overall] + list(result.by_group):
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
        np.testing.assert_allclose(np.diagonal(matrix), 1.0, atol=1e-9)
        assert np.all(matrix <= 1.0) and np.all(matrix >= -1.0)


def test_identical_data_gives_similarity_one():
    """Two languages with identical batches in a model WITHOUT language-specific layers.

    With language_specific=None and no language embeddings the language id
    changes nothing in the computation, so "en" and "fr" fed the same tokens
    give the same gradient (with LS layers they would pass through different
    LS weights and need not agree). "sw" gets other data as a control.
    """
    model = tiny_model(None)
    assert not partition_variables(model).language
    same = language_batch(0, seed=5)
    batches = {"en": same, "fr": {**same, "language_ids": same["language_ids"] * 0 + 1}, "sw": language_batch(2, seed=6)}
    result = gradient_similarity(model, batches)
    assert result.pair("en", "fr") == pytest.approx(1.0, abs=1e-6)
    for name in result.groups:
        assert result.pair("en", "fr", name) == pytest.approx(1.0, abs=1e-6), name
    assert result.pair("en", "sw") < 0.99


def test_layer_groups_follow_layer_objects():
    """Groups hold exactly the shared variables of their layer objects; LS variables are in none."""
    model = tiny_model(["adapter", "ffn"])
    partition = partition_variables(model)
    groups = layer_groups(model, partition)
    assert groups.names == (
        "embeddings", "block_0/attention", "block_0/layer_norms",
        "block_1/attention", "block_1/layer_norms", "masked_lm_head",
    )  # the FFNs are language specific: no shared FFN group
    claimed = [i for members in groups.members for i in members]
    assert sorted(claimed) == list(range(len(partition.shared)))
    block = model.encoder.block_1
    expected = {id(v) for v in block.attention.trainable_variables}
    assert {id(partition.shared[i]) for i in groups.members[groups.index("block_1/attention")]} == expected
    norms = {id(v) for layer in (block.attention_norm, block.feed_forward_norm) for v in layer.trainable_variables}
    assert {id(partition.shared[i]) for i in groups.members[groups.index("block_1/layer_norms")]} == norms
    assert sum(groups.sizes) == partition.num_shared_parameters


def test_pre_layer_norm_model_has_final_norm_group():
    groups = layer_groups(tiny_model("adapter", normalize_first=True))
    assert groups.names[-2:] == ("final_norm", "masked_lm_head")


def test_function_follows_the_current_weights(adapter_model):
    """A reused function reads the variables live: after a weight change it equals a fresh computation."""
    model = tiny_model("adapter")
    function = GradientSimilarityFunction(model)
    batches = batches_by_language()
    before = function(batches)
    variable = partition_variables(model).shared[-1]  # the MLM output bias
    variable.assign(variable.numpy() + np.linspace(-3, 3, variable.shape[0]))
    after = function(batches)
    fresh = gradient_similarity(model, batches)
    np.testing.assert_allclose(after.overall, fresh.overall, atol=1e-6)
    assert np.max(np.abs(after.overall - before.overall)) > 1e-3


def test_json_round_trip(adapter_model):
    result = gradient_similarity(adapter_model, batches_by_language(), step=7)
    again = GradientSimilarity.from_json(result.to_json())
    assert again.step == 7 and again.groups == result.groups and again.languages == result.languages
    np.testing.assert_allclose(again.by_group, result.by_group)
    np.testing.assert_allclose(again.overall, result.overall)


def test_bad_input_names_the_language(adapter_model):
    batches = batches_by_language()
    with pytest.raises(KeyError, match="'xx'"):
        gradient_similarity(adapter_model, {**batches, "xx": batches["en"]})
    with pytest.raises(ValueError, match="'fr'.*language ids \\[0\\]"):
        gradient_similarity(adapter_model, {"en": batches["en"], "fr": batches["en"]})
    with pytest.raises(ValueError, match="at least two languages"):
        gradient_similarity(adapter_model, {"en": batches["en"]})
    with pytest.raises(ValueError, match="'sw' is given twice"):
        gradient_similarity(adapter_model, {"sw": batches["sw"], 2: batches["sw"]})
    with pytest.raises(KeyError, match="mask_ids"):
        gradient_similarity(adapter_model, {c: {k: v for k, v in b.items() if k != "mask_ids"} for c, b in batches.items()})
