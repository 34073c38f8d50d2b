"""Language sub-networks: importance, masks, Jaccard overlaps and one-language shares."""

import math

import numpy as np
import pytest

from tests.helpers import tiny_model
from tests.interference.fixtures import batches_by_language, hand_gradient, language_batch
from tf_metaling.interference import LanguageSubnetworks, language_subnetworks, layer_groups
from tf_metaling.interference.language_subnetworks import top_fraction_mask
from tf_metaling.models import partition_variables


@pytest.fixture(scope="module")
def model():
    return tiny_model("adapter")


@pytest.fixture(scope="module")
def subnetworks(model):
    return language_subnetworks(model, batches_by_language(), keep_fraction=0.25)


def test_mask_overlap_of_a_language_with_itself_is_one(subnetworks):
    for group in ("overall",) + subnetworks.groups:
        np.testing.assert_array_equal(np.diagonal(subnetworks.overlap(group)), 1.0)
    # ... and not trivially 1 everywhere: different languages keep different weights.
    off = ~np.eye(3, dtype=bool)
    assert np.all(subnetworks.overlap()[off] < 0.9)


def test_overlaps_and_shares_match_the_masks(subnetworks):
    """Jaccard and one-language shares recomputed with Python sets from the per-variable masks."""
    codes = subnetworks.languages
    kept = {}
    for code in codes:
        masks = subnetworks.variable_masks(code)
        kept[code] = {(path, int(i)) for path, mask in masks.items() for i in np.flatnonzero(mask)}
    for a in codes:
        for b in codes:
            expected = len(kept[a] & kept[b]) / len(kept[a] | kept[b])
            assert subnetworks.overlap()[codes.index(a), codes.index(b)] == pytest.approx(expected, abs=1e-12)
    everyone = set().union(*kept.values())
    only_one = {w for w in everyone if sum(w in kept[c] for c in codes) == 1}
    assert subnetworks.unique_share() == pytest.approx(len(only_one) / len(everyone), abs=1e-12)
    for i, code in enumerate(codes):
        assert subnetworks.unique_share_by_language()[i] == pytest.approx(len(kept[code] & only_one) / len(kept[code]))


def test_masks_keep_the_top_fraction_by_hand_importance(model, subnetworks):
    """Per layer group, a language's mask is the top 25% of |w * dL/dw| computed by hand."""
    batches = batches_by_language()
    result = subnetworks
    shared = partition_variables(model).shared
    groups = layer_groups(model)
    gradient = hand_gradient(model, [batches["sw"]])
    masks = result.variable_masks("sw")
    for name in ("block_1/feed_forward", "masked_lm_head"):
        members = groups.members[groups.index(name)]
        scores = np.concatenate([np.abs(shared[k].numpy() * gradient[k]).ravel() for k in members])
        mask = np.concatenate([masks[shared[k].path].ravel() for k in members])
        count = math.ceil(0.25 * scores.size)
        assert mask.sum() == count
        # Every kept weight scores at least as high as every dropped one (up to float noise).
        assert scores[mask].min() >= scores[~mask].max() * (1 - 1e-4)


def test_top_fraction_mask_never_keeps_zero_scores():
    scores = np.array([0.0, 5.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(top_fraction_mask(scores, 0.25), [0, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(top_fraction_mask(scores, 0.75), [0, 1, 0, 1, 1, 0, 0, 0])


def test_identical_data_gives_identical_masks():
    """No LS layers (the language id changes nothing): identical batches give the same sub-network."""
    model = tiny_model(None)
    same = language_batch(0, seed=5)
    batches = {"en": same, "fr": {**same, "language_ids": same["language_ids"] * 0 + 1}}
    result = language_subnetworks(model, batches, keep_fraction=0.3)
    np.testing.assert_array_equal(result.overlap(), np.ones((2, 2)))
    assert result.unique_share() == 0.0


def test_json_round_trip_and_bad_fraction(model, subnetworks):
    again = LanguageSubnetworks.from_json(subnetworks.to_json())
    for group in ("overall",) + subnetworks.groups:
        np.testing.assert_allclose(again.overlap(group), subnetworks.overlap(group))
        assert again.unique_share(group) == pytest.approx(subnetworks.unique_share(group))
    with pytest.raises(ValueError, match="keep_fraction"):
        language_subnetworks(model, batches_by_language(), keep_fraction=0.0)
