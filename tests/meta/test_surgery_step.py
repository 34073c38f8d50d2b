"""The ordinary step with gradient surgery: replicas, what it leaves alone, its saved state."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import random_batch, split_across_replicas, tiny_model
from tf_metaling.losses import masked_lm_example_losses
from tf_metaling.meta.gradient_surgery import GradientSurgery, SurgeryOptions
from tf_metaling.meta.meta_step import MetaStep
from tf_metaling.models import layer_groups, partition_variables
from tf_metaling.optimizers import RowSparseAdam

KINDS = ["adapter", "layer_norm"]
MIXED = (0, 1, 2, 0, 2, 1, 1, 0)  # every language in each replica's half


def mlm_losses(outputs, batch):
    return masked_lm_example_losses(outputs["masked_lm_logits"], batch)


def _build(strategy, surgery_options, optimizer=None, clip_norm=1.0, language_specific=KINDS):
    with strategy.scope():
        model = tiny_model(language_specific, language_embedding=True, seed=0, num_layers=1)
        optimizer = optimizer() if optimizer else RowSparseAdam(1e-2)
        optimizer.build(model.trainable_variables)
        surgery = GradientSurgery(model, surgery_options) if surgery_options else None
    step = MetaStep(model, mlm_losses, optimizer, clip_norm=clip_norm, output_names=("masked_lm_logits",),
                    surgery=surgery)
    return step


OPTIONS = [
    SurgeryOptions("pcgrad", granularity="model", seed=1),
    SurgeryOptions("gradvac", granularity="layer_group", beta=0.5, seed=1),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["pcgrad_model", "gradvac_layer_group"])
def test_two_replicas_equal_one_device(options, two_cpu_devices, mirrored_strategy):
    single = _build(tf.distribute.OneDeviceStrategy(two_cpu_devices[0]), options)
    mirrored = _build(mirrored_strategy, options)
    # Eager: tracing L per-language passes on two replicas costs far more than two eager
    # steps; the traced path is covered by the trainer tests (tests/training).
    single_fn = single.ordinary_step

    def mirrored_fn(batch):
        results = mirrored_strategy.run(mirrored.ordinary_step, args=(batch,))
        return tf.nest.map_structure(lambda v: mirrored_strategy.experimental_local_results(v)[0], results)

    for step_index in range(2):
        batch = random_batch(batch=8, language_ids=MIXED, seed=10 + step_index)
        expected = single_fn(batch)
        actual = mirrored_fn(split_across_replicas(mirrored_strategy, batch))
        np.testing.assert_allclose(float(actual["loss"]), float(expected["loss"]), rtol=1e-5)
        np.testing.assert_allclose(actual["gradient_cosines"].numpy(), expected["gradient_cosines"].numpy(),
                                   rtol=1e-4, atol=1e-5)
    for a, b in zip(single.model.trainable_weights, mirrored.model.trainable_weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    # The surgery changed the update (so a per-replica surgery would have shown up above).
    plain = _build(tf.distribute.OneDeviceStrategy(two_cpu_devices[0]), None)
    for step_index in range(2):
        plain.ordinary_step(random_batch(batch=8, language_ids=MIXED, seed=10 + step_index))
    assert not all(np.allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
                   for a, b in zip(single.model.trainable_weights, plain.model.trainable_weights))
    if options.method == "gradvac":
        targets = single.surgery.targets.numpy()
        assert np.any(targets != 0.0)  # two EMA updates happened
        np.testing.assert_allclose(mirrored.surgery.targets.numpy(), targets, rtol=1e-4, atol=1e-6)


def _sgd():
    return keras.optimizers.SGD(learning_rate=1.0)


@pytest.mark.parametrize("options", OPTIONS, ids=["pcgrad_model", "gradvac_layer_group"])
def test_language_specific_parameters_and_heads_take_their_ordinary_gradient(options):
    # With plain SGD at rate 1 and no clipping, a variable moves by minus its gradient.
    plain = _build(tf.distribute.get_strategy(), None, optimizer=_sgd, clip_norm=0.0)
    treated = _build(tf.distribute.get_strategy(), options, optimizer=_sgd, clip_norm=0.0)
    start = [v.numpy() for v in plain.model.trainable_variables]
    batch = random_batch(batch=8, language_ids=MIXED, seed=3)
    plain_statistics = plain.ordinary_step(batch)
    treated_statistics = treated.ordinary_step(batch)
    np.testing.assert_allclose(float(treated_statistics["loss"]), float(plain_statistics["loss"]), rtol=1e-6)
    np.testing.assert_allclose(treated_statistics["language_weights"].numpy(),
                               plain_statistics["language_weights"].numpy())

    partition = partition_variables(treated.model)
    groups = layer_groups(treated.model, partition)
    head = set(groups.members[groups.index("masked_lm_head")])
    operated = set(treated.surgery.operated)
    assert operated and operated.isdisjoint(head)
    assert operated | head == set(range(len(partition.shared)))
    changed = 0
    pairs = zip(start, plain.model.trainable_variables, treated.model.trainable_variables)
    for index, (before, a, b) in enumerate(pairs):
        ordinary, surgical = before - a.numpy(), before - b.numpy()
        shared_positions = partition.shared_positions
        shared_index = shared_positions.index(index) if index in shared_positions else None
        if shared_index is None or shared_index in head:  # LS parameters and heads: untouched
            np.testing.assert_allclose(surgical, ordinary, rtol=1e-4, atol=1e-6, err_msg=a.path)
        elif not np.allclose(surgical, ordinary, rtol=1e-3, atol=1e-5):
            changed += 1
    assert changed > 0  # the batch's languages conflict somewhere: the surgery changed shared gradients


def test_without_conflict_surgery_is_the_ordinary_step():
    # One language in the batch: nothing to conflict with.
    plain = _build(tf.distribute.get_strategy(), None, optimizer=_sgd, clip_norm=0.0)
    treated = _build(tf.distribute.get_strategy(), OPTIONS[0], optimizer=_sgd, clip_norm=0.0)
    batch = random_batch(batch=4, language_ids=(1, 1, 1, 1), seed=5)
    plain.ordinary_step(batch)
    treated.ordinary_step(batch)
    for a, b in zip(plain.model.trainable_variables, treated.model.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)


def test_gradvac_targets_survive_a_checkpoint_round_trip(tmp_path):
    trained = _build(tf.distribute.get_strategy(), OPTIONS[1])
    for seed in range(2):
        trained.ordinary_step(random_batch(batch=8, language_ids=MIXED, seed=seed))
    targets = trained.surgery.targets.numpy()
    assert np.any(targets != 0.0)
    path = tf.train.Checkpoint(surgery=trained.surgery).write(str(tmp_path / "ckpt"))
    fresh = _build(tf.distribute.get_strategy(), OPTIONS[1])
    assert np.all(fresh.surgery.targets.numpy() == 0.0)
    tf.train.Checkpoint(surgery=fresh.surgery).read(path).assert_consumed()
    np.testing.assert_array_equal(fresh.surgery.targets.numpy(), targets)


def test_surgery_refuses_what_it_cannot_do():
    model = tiny_model("none", seed=0, num_layers=1, languages=("en",))
    with pytest.raises(ValueError, match="at least two languages"):
        GradientSurgery(model, SurgeryOptions("pcgrad"))
    with pytest.raises(ValueError, match="expected one of"):
        SurgeryOptions("mgda")
    with pytest.raises(ValueError, match="beta"):
        SurgeryOptions("gradvac", beta=0.0)
