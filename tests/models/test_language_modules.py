"""Language-layer files: save some languages, load them onto the same base, refuse another base, grow languages."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import random_batch, tiny_model
from tf_metaling.models import add_language, language_module, load_language_module, save_language_module
from tf_metaling.models import partition_variables
from tf_metaling.models.language_modules import read_language_module
from tf_metaling.models.partition import language_specific_variables, select_trainable, variable_key

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


def _same_base(source, seed, **overrides):
    """A model with `source`'s shared weights and other (random) language-specific weights."""
    target = tiny_model(source.encoder.language_specific, seed=seed,
                        language_embedding=source.encoder.language_embedding, **overrides)  # fmt: skip
    routed = {id(v) for v in language_specific_variables(target)}
    source_weights = {variable_key(v): v for v in source.weights}
    for variable in target.weights:
        if id(variable) not in routed:
            variable.assign(source_weights[variable_key(variable)].numpy())
    return target


def _outputs(model, language_ids):
    batch = random_batch(language_ids=language_ids)
    return model(batch)["sequence_output"].numpy()


@pytest.mark.parametrize("kinds", ["adapter", ALL_KINDS], ids=["adapters", "all_kinds"])
def test_saved_languages_load_into_a_fresh_model_on_the_same_base(tmp_path, kinds):
    source = tiny_model(kinds, seed=1, language_embedding=kinds == ALL_KINDS)
    target = _same_base(source, seed=2)
    path = str(tmp_path / "fr_sw.npz")
    save_language_module(source, ["fr", "sw"], path, provenance={"model_dir": "/runs/stage1", "step": 40})
    before = {v.path: v.numpy().copy() for v in target.weights}
    en_before = _outputs(target, (0, 0, 0, 0))
    assert not np.allclose(_outputs(target, (1, 2, 1, 2)), _outputs(source, (1, 2, 1, 2)), atol=1e-3)
    assert load_language_module(target, path) is target  # both languages exist: loaded in place
    # Outputs of the loaded languages equal the source's; the other language's are unchanged.
    np.testing.assert_array_equal(_outputs(target, (1, 2, 1, 2)), _outputs(source, (1, 2, 1, 2)))
    np.testing.assert_array_equal(_outputs(target, (0, 0, 0, 0)), en_before)
    routed = {id(v) for v in language_specific_variables(target)}
    for variable in target.weights:
        if id(variable) in routed:
            np.testing.assert_array_equal(variable.numpy()[0], before[variable.path][0])
        else:
            np.testing.assert_array_equal(variable.numpy(), before[variable.path])
    manifest, weights = read_language_module(path)
    assert manifest["languages"] == ["fr", "sw"]
    assert manifest["provenance"]["model_dir"] == "/runs/stage1" and "saved_at" in manifest["provenance"]
    assert manifest["base"]["architecture"]["hidden_dim"] == 8
    assert manifest["base"]["fingerprint"].startswith("sha256:")
    assert all(array.shape[0] == 2 for array in weights.values())
    assert set(weights) == {variable_key(v) for v in language_specific_variables(target)}


def test_a_language_the_model_lacks_is_added(tmp_path):
    source = tiny_model("adapter", seed=1, languages=("en", "fr", "sw", "te"))
    target = _same_base(source, seed=2)  # en, fr, sw
    path = str(tmp_path / "te.npz")
    save_language_module(source, "te", path)
    en_before = _outputs(target, (0, 1, 2, 0))
    grown = load_language_module(target, path)
    assert grown is not target and grown.encoder.language_vocabulary.codes == ("en", "fr", "sw", "te")
    assert target.encoder.language_vocabulary.codes == ("en", "fr", "sw")  # the given model is unchanged
    np.testing.assert_array_equal(_outputs(grown, (3, 3, 3, 3)), _outputs(source, (3, 3, 3, 3)))
    np.testing.assert_array_equal(_outputs(grown, (0, 1, 2, 0)), en_before)


def test_load_under_another_code_and_a_subset(tmp_path):
    model = tiny_model("adapter")
    path = str(tmp_path / "en_fr.npz")
    save_language_module(model, ["en", "fr"], path)
    load_language_module(model, path, languages=["en"], rename={"en": "sw"})
    for variable in language_specific_variables(model):
        np.testing.assert_array_equal(variable.numpy()[2], variable.numpy()[0])
    with pytest.raises(KeyError, match=r"en_fr\.npz: languages \['de'\] are not in the file"):
        load_language_module(model, path, languages=["de"])
    with pytest.raises(ValueError, match="load two languages into one row"):
        load_language_module(model, path, rename={"en": "fr"})


def test_a_different_base_is_refused_listing_the_differences(tmp_path):
    source = tiny_model("adapter", seed=1)
    path = str(tmp_path / "sw.npz")
    save_language_module(source, "sw", path)
    other_weights = tiny_model("adapter", seed=2)  # same architecture, other shared weights
    wider = tiny_model("adapter", seed=1, hidden_dim=12, intermediate_dim=24, adapter_dim=6)
    for model, expected in [
        (other_weights, ["shared weights' fingerprint: file sha256:"]),
        (
            wider,
            [
                "hidden_dim: file 8, model 12",
                "intermediate_dim: file 16, model 24",
                "adapter_dim: file 4, model 6",
                "LS weight block_0/adapter_attention/down_kernel: file shape [8, 4], model [12, 6]",
                "shared weight block_0/attention/output_bias: file [8], model [12]",
            ],
        ),
    ]:
        before = [v.numpy().copy() for v in model.weights]
        with pytest.raises(ValueError) as error:
            load_language_module(model, path)
        message = str(error.value)
        assert message.startswith(f"{path}: these language layers were saved from a different base model")
        for line in expected:
            assert f"\n  - {line}" in message, message
        for variable, value in zip(model.weights, before):  # nothing assigned
            np.testing.assert_array_equal(variable.numpy(), value)


def test_another_layout_is_refused(tmp_path):
    path = str(tmp_path / "en.npz")
    save_language_module(tiny_model("adapter"), "en", path)
    with pytest.raises(ValueError) as error:
        load_language_module(tiny_model("ffn"), path)
    message = str(error.value)
    assert "language_specific: file ['adapter_attention', 'adapter_ffn'], model ['ffn']" in message
    assert "LS weight block_0/adapter_ffn/up_kernel: in the file, not in the model" in message


def test_files_are_written_atomically(tmp_path, monkeypatch):
    model = tiny_model("adapter")
    path = tmp_path / "layers" / "en.npz"
    renames = []
    real_replace = os.replace

    def recording_replace(source, destination):
        renames.append((source, destination, os.path.getsize(source)))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    save_language_module(model, "en", str(path))
    ((source, destination, size),) = renames
    assert destination == str(path) and os.path.dirname(source) == str(path.parent) and source != destination
    assert size == os.path.getsize(path)  # the complete file existed under the temporary name
    good = path.read_bytes()

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_language_module(model, "fr", str(path))
    assert path.read_bytes() == good  # the earlier file is intact
    assert os.listdir(path.parent) == ["en.npz"]  # no temporary file left behind


def test_frozen_language_layers_are_saved_and_loaded(tmp_path):
    """Fine-tuning freezes variables (select_trainable); the files still hold every LS weight."""
    model = tiny_model("adapter", seed=1)
    select_trainable(model, "heads")
    path = str(tmp_path / "fr.npz")
    save_language_module(model, "fr", path)
    target = _same_base(model, seed=3)
    select_trainable(target, "heads")
    load_language_module(target, path)
    np.testing.assert_array_equal(_outputs(target, (1, 1, 1, 1)), _outputs(model, (1, 1, 1, 1)))


def test_unreadable_files_are_named(tmp_path):
    model = tiny_model("adapter")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: cannot read language layers"):
        load_language_module(model, str(tmp_path / "junk.npz"))
    old = tmp_path / "v1.npz"
    np.savez(old, __meta__=np.array(json.dumps({"format_version": 1, "language": "en"})))
    with pytest.raises(ValueError, match=r"v1\.npz: format_version 1; this library reads 2"):
        load_language_module(model, str(old))


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
    module = language_module(model, ["fr"])
    assert len(module) == len(partition_variables(model).language)
    assert all(
        not name.startswith(model.encoder.name) and array.shape[0] == 1 for name, array in module.items()
    )
