"""Per-language modules: export/import one language, grow the language set."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import random_batch, tiny_model
from tf_metaling.models import add_language, language_module, load_language_module, save_language_module
from tf_metaling.models import partition_variables

ALL_KINDS = ["adapter", "attention", "ffn", "layer_norm"]


def test_partition_is_structural_and_complete():
    model = tiny_model(ALL_KINDS, language_embedding=True)
    partition = partition_variables(model)
    assert len(partition.shared) + len(partition.language) == len(model.trainable_variables)
    assert all(v.shape[0] == 3 for v in partition.language)
    # Two blocks x (2 adapters x 4 + attention 4 + ffn 4 + 2 norms x 2) + language embedding.
    assert len(partition.language) == 2 * (8 + 4 + 4 + 4) + 1
    # Every shared variable is reached by every language: no LS layer owns it.
    language_ids = {id(v) for v in partition.language}
    assert not any(id(v) in language_ids for v in partition.shared)


def test_save_and_load_module_into_another_model(tmp_path):
    source = tiny_model("adapter", seed=1)
    target = tiny_model("adapter", seed=2)
    path = str(tmp_path / "sw.npz")
    save_language_module(source, "sw", path)
    before = {v.path: v.numpy().copy() for v in target.weights}
    assert load_language_module(target, path) == "sw"
    partition = partition_variables(target)
    language = {id(v) for v in partition.language}
    for variable in target.weights:
        if id(variable) in language:
            np.testing.assert_array_equal(variable.numpy()[2], source_row(source, variable, 2))
            np.testing.assert_array_equal(variable.numpy()[:2], before[variable.path][:2])
        else:
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])


def source_row(source, variable, index):
    key = variable.path.split("/", 1)[-1]
    match = [v for v in source.weights if v.path.split("/", 1)[-1] == key]
    return match[0].numpy()[index]


def test_load_module_under_another_code(tmp_path):
    model = tiny_model("adapter")
    path = str(tmp_path / "en.npz")
    save_language_module(model, "en", path)
    load_language_module(model, path, code="fr")
    for variable in partition_variables(model).language:
        np.testing.assert_array_equal(variable.numpy()[1], variable.numpy()[0])


def test_load_module_with_wrong_shape_fails_and_changes_nothing(tmp_path):
    small = tiny_model("adapter", adapter_dim=4)
    large = tiny_model("adapter", adapter_dim=6)
    path = str(tmp_path / "en.npz")
    save_language_module(small, "en", path)
    before = [v.numpy().copy() for v in large.weights]
    with pytest.raises(ValueError, match="shape"):
        load_language_module(large, path)
    for variable, value in zip(large.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_load_module_layout_mismatch_and_unknown_language(tmp_path):
    adapters = tiny_model("adapter")
    ffn = tiny_model("ffn")
    path = str(tmp_path / "en.npz")
    save_language_module(adapters, "en", path)
    with pytest.raises(ValueError, match="missing"):
        load_language_module(ffn, path)
    with pytest.raises(KeyError, match="add it first"):
        load_language_module(adapters, path, code="de")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_language_module(adapters, str(tmp_path / "junk.npz"))


@pytest.mark.parametrize("init_from", [None, "fr"])
def test_add_language_leaves_everything_bit_identical(init_from):
    model = tiny_model(ALL_KINDS, language_embedding=True)
    batch = random_batch()
    before = model(batch)
    grown = add_language(model, "te", init_from=init_from)
    assert grown.language_vocabulary.codes == ("en", "fr", "sw", "te")
    old_language = {id(v) for v in partition_variables(model).language}
    for old, new in zip(model.weights, grown.weights):
        if id(old) in old_language:
            np.testing.assert_array_equal(new.numpy()[:3], old.numpy())
            if init_from == "fr":
                np.testing.assert_array_equal(new.numpy()[3], old.numpy()[1])
        else:
            np.testing.assert_array_equal(new.numpy(), old.numpy())
    after = grown(batch)
    np.testing.assert_array_equal(after["sequence_output"].numpy(), before["sequence_output"].numpy())
    new_batch = {**batch, "language_ids": tf.constant([3, 3, 0, 1])}
    outputs = grown(new_batch)["sequence_output"].numpy()
    assert np.all(np.isfinite(outputs))
    if init_from == "fr":
        fr_batch = {**batch, "language_ids": tf.constant([1, 1, 0, 1])}
        np.testing.assert_allclose(outputs, grown(fr_batch)["sequence_output"].numpy(), atol=1e-6)


def test_language_module_contents():
    model = tiny_model("adapter")
    module = language_module(model, "fr")
    partition = partition_variables(model)
    assert len(module) == len(partition.language)
    assert all(not name.startswith(model.name) for name in module)
