"""Dynamic MLM masking: 15% selected, 80/10/10, specials never masked, seeded."""

import numpy as np
import pytest
import tensorflow as tf

from tf_metaling.data.masking import MaskingConfig, mask_batch
from tf_metaling.tokenizers import CLS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, SEP_ID

VOCAB = 1000


def _batch(batch_size=256, length=128, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(length // 2, length + 1, batch_size)
    ids = np.zeros((batch_size, length), np.int32)
    mask = np.zeros((batch_size, length), np.int32)
    for i, n in enumerate(lengths):
        ids[i, 0] = CLS_ID
        ids[i, 1 : n - 1] = rng.integers(NUM_SPECIAL_TOKENS, VOCAB, n - 2)
        ids[i, n - 1] = SEP_ID
        mask[i, :n] = 1
    return {"token_ids": ids, "padding_mask": mask}, lengths


_TRACED = {}


def _mask(batch, config, seed):
    if config not in _TRACED:
        _TRACED[config] = tf.function(
            lambda ids, mask, s: mask_batch({"token_ids": ids, "padding_mask": mask}, config, s),
            input_signature=[
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([2], tf.int64),
            ],
        )
    return _TRACED[config](batch["token_ids"], batch["padding_mask"], tf.constant(seed, tf.int64))


def test_masking_selects_15_percent_with_80_10_10_split():
    config = MaskingConfig(VOCAB, max_predictions=40)
    selected = maskable = masked = randomised = kept = 0
    out = batch = None
    for step in range(4):
        batch, lengths = _batch(seed=step)
        out = {k: v.numpy() for k, v in _mask(batch, config, [7, step]).items()}
        original = batch["token_ids"]
        for i in range(len(lengths)):
            n_predictions = int(out["mask_weights"][i].sum())
            positions = out["mask_positions"][i, :n_predictions]
            assert len(set(positions.tolist())) == n_predictions
            assert (out["mask_ids"][i, :n_predictions] == original[i, positions]).all()
            assert not np.isin(original[i, positions], [PAD_ID, CLS_ID, SEP_ID]).any()
            assert (out["mask_weights"][i, n_predictions:] == 0).all()
            new = out["token_ids"][i, positions]
            masked += int((new == MASK_ID).sum())
            kept += int((new == original[i, positions]).sum())
            randomised += int(((new != MASK_ID) & (new != original[i, positions])).sum())
            selected += n_predictions
            maskable += int(lengths[i] - 2)
            # Outside the selected positions nothing changes.
            untouched = np.setdiff1d(np.arange(original.shape[1]), positions)
            assert (out["token_ids"][i, untouched] == original[i, untouched]).all()
    assert selected / maskable == pytest.approx(0.15, abs=0.005)
    assert masked / selected == pytest.approx(0.8, abs=0.02)
    # A random draw can hit the original id (1 in ~1000); it then counts as kept.
    assert randomised / selected == pytest.approx(0.1, abs=0.015)
    assert kept / selected == pytest.approx(0.1, abs=0.015)
    assert np.all(out["padding_mask"] == batch["padding_mask"])


def test_random_replacements_are_regular_tokens():
    config = MaskingConfig(VOCAB, max_predictions=40, mask_token_rate=0.0, random_token_rate=1.0)
    batch, _ = _batch(seed=3)
    out = _mask(batch, config, [1, 2])
    weights = out["mask_weights"].numpy() > 0
    positions = out["mask_positions"].numpy()
    new = np.take_along_axis(out["token_ids"].numpy(), positions, axis=1)[weights]
    assert new.min() >= NUM_SPECIAL_TOKENS and new.max() < VOCAB


def test_max_predictions_caps_and_empty_rows_get_none():
    config = MaskingConfig(VOCAB, max_predictions=3, mask_rate=0.5)
    batch = {
        "token_ids": np.array(
            [[2, 10, 11, 12, 13, 14, 15, 16, 3], [2, 3, 0, 0, 0, 0, 0, 0, 0]], np.int32
        ),
        "padding_mask": np.array([[1] * 9, [1, 1] + [0] * 7], np.int32),
    }
    out = _mask(batch, config, [0, 0])
    assert out["mask_weights"].numpy().sum(axis=1).tolist() == [3.0, 0.0]
    assert out["token_ids"].numpy()[1].tolist() == batch["token_ids"][1].tolist()
    assert out["mask_positions"].shape == (2, 3) and out["mask_ids"].dtype == tf.int32


def test_masking_is_a_function_of_the_seed():
    config = MaskingConfig(VOCAB, max_predictions=40)
    batch, _ = _batch(batch_size=8, seed=1)
    first = _mask(batch, config, [5, 1])
    again = _mask(batch, config, [5, 1])
    other = _mask(batch, config, [5, 2])
    for key in first:
        assert np.array_equal(first[key].numpy(), again[key].numpy())
    assert not np.array_equal(first["mask_positions"].numpy(), other["mask_positions"].numpy())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": 5},
        {"vocab_size": 100, "mask_rate": 0.0},
        {"vocab_size": 100, "mask_token_rate": 0.9, "random_token_rate": 0.2},
        {"vocab_size": 100, "max_predictions": 0},
    ],
)
def test_bad_masking_config_raises(kwargs):
    with pytest.raises(ValueError):
        MaskingConfig(**kwargs)


def test_same_batches_as_tensorflow_text_mask_language_model():
    import tensorflow_text as text

    from tf_metaling.data.masking import SeededItemSelector, SeededMaskValuesChooser

    config = MaskingConfig(VOCAB, max_predictions=40)
    batch, lengths = _batch(batch_size=16, seed=5)
    seed = tf.constant([3, 4], tf.int64)
    ours = _mask(batch, config, [3, 4])
    ragged = tf.RaggedTensor.from_tensor(batch["token_ids"], lengths=lengths)
    masked, positions, original = text.mask_language_model(
        ragged,
        item_selector=SeededItemSelector(config, seed),
        mask_values_chooser=SeededMaskValuesChooser(config, seed),
    )
    assert np.array_equal(ours["token_ids"].numpy(), masked.to_tensor(0, shape=[None, 128]).numpy())
    assert np.array_equal(
        ours["mask_positions"].numpy(),
        tf.cast(positions, tf.int32).to_tensor(0, shape=[None, 40]).numpy(),
    )
    assert np.array_equal(ours["mask_ids"].numpy(), original.to_tensor(0, shape=[None, 40]).numpy())
