"""Fine-tuning a converted keras-hub preset (JointAll+LS, +Meta LS), exporting it and serving it."""

import os

import numpy as np
import pytest
import tensorflow as tf
from official.modeling import hyperparams

from tests.models import pretrained_fixtures as fixtures
from tf_metaling import checkpoints, configs
from tf_metaling.models import partition_variables, save_language_module
from tf_metaling.models.partition import language_specific_variables, variable_key
from tf_metaling.models.pretrained import load_keras_hub_tokenizer, load_pretrained_encoder
from tf_metaling.tokenizers import SentencePieceTokenizer
from tf_metaling.training.finetuning import run_finetuning

pytest.importorskip("keras_hub")

SENTENCES = {
    "en": ["the quick brown fox", "the lazy dog sleeps", "a fox jumps over", "the dog is lazy",
           "quick brown dog", "over the lazy fox", "the fox runs", "a dog jumps"],
    "de": ["der schnelle braune fuchs", "der faule hund schläft", "ein fuchs springt", "der hund ist faul",
           "schneller brauner hund", "über den faulen fuchs", "der fuchs rennt", "ein hund springt"],
}


def _nli_file(path, sentences):
    rows = ["premise\thypo\tlabel"]
    for i, sentence in enumerate(sentences):
        other = sentences[(i + 3) % len(sentences)]
        hypothesis, label = (sentence, "entailment") if i % 2 == 0 else (other, "contradiction")
        rows.append(f"{sentence}\t{hypothesis}\t{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return fixtures.write_xlm_roberta_preset(tmp_path_factory.mktemp("preset") / "xlmr")


def _config(preset, tmp_path, **extra):
    files = {code: _nli_file(tmp_path / f"{code}.tsv", lines) for code, lines in SENTENCES.items()}
    overrides = {
        "task": "sentence_classification",
        "model": {"language_specific": "adapter", "adapter_dim": 4, "max_sequence_length": 16},
        "finetune": {"init_preset": preset, "dataset": "files", "train_language": "en",
                     "train_file": files["en"], "eval_files": f"en={files['en']},de={files['de']}",
                     "label_names": ["entailment", "contradiction"],
                     "train_weights": "language_specific_and_heads"},
        "data": {"languages": ["en", "de"], "batch_size": 4, "eval_batch_size": 4, "sequence_length": 16},
        "trainer": {"train_steps": 4, "eval_interval": 4, "steps_per_loop": 2, "checkpoint_interval": 4,
                    "summary_interval": 2, "probe_interval": 0, "learning_rate": 1e-2},
    }
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    if overrides.get("meta", {}).get("enabled"):
        overrides["finetune"]["meta_files"] = f"en={files['en']},de={files['de']}"
    return hyperparams.override_params_dict(configs.get_experiment("tiny"), overrides, is_strict=True)


def _trained_model(model_dir):
    return checkpoints.restore_model(model_dir)


@pytest.fixture(scope="module")
def finetuned(preset, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("finetune")
    model_dir = str(tmp_path / "run")
    metrics = run_finetuning(_config(preset, tmp_path), model_dir, "train_and_eval")
    return model_dir, metrics


def test_finetuning_trains_adapters_and_head_only(preset, finetuned):
    model_dir, metrics = finetuned
    assert metrics["step"] == 4 and np.isfinite(metrics["loss/de"])
    assert os.path.exists(os.path.join(model_dir, SentencePieceTokenizer.file_name))
    model = _trained_model(model_dir)
    converted = load_pretrained_encoder(preset, ["en", "de"], language_specific="adapter", adapter_dim=4)
    trained = {v.path.split("/", 1)[1]: v.numpy() for v in model.encoder.weights}
    language = {v.path.split("/", 1)[1] for v in partition_variables(model.encoder).language}
    moved = []
    for variable in converted.weights:
        key = variable.path.split("/", 1)[1]
        if key in language:
            moved.append(not np.array_equal(trained[key], variable.numpy()))
        elif "down_kernel" not in key:  # shared weights stay the pretrained ones
            np.testing.assert_array_equal(trained[key], variable.numpy(), err_msg=key)
    assert any(moved)  # the adapters trained


def test_language_layers_are_loaded_before_fine_tuning(preset, tmp_path):
    """finetune.language_layers: a file saved on the same base is loaded (here frozen: heads only train)."""
    config = _config(preset, tmp_path, finetune={"train_weights": "heads"},
                     trainer={"train_steps": 2, "eval_interval": 2, "checkpoint_interval": 2})
    stage_one = load_pretrained_encoder(preset, ["en", "de"], language_specific="adapter", adapter_dim=4,
                                        adapter_activation=config.model.adapter_activation)  # fmt: skip
    rng = np.random.RandomState(0)
    for variable in partition_variables(stage_one).language:  # "trained" German adapters
        variable.assign(rng.normal(scale=0.1, size=variable.shape).astype("float32"))
    path = save_language_module(stage_one, "de", str(tmp_path / "de.npz"), provenance={"stage": 1})
    config.finetune.language_layers = [path]
    model_dir = str(tmp_path / "with_layers")
    run_finetuning(config, model_dir, "train")
    model = _trained_model(model_dir)
    assert checkpoints.latest_checkpoint(model_dir).endswith("ckpt-2")
    saved = {variable_key(v): v.numpy() for v in language_specific_variables(stage_one)}
    for variable in language_specific_variables(model.encoder):
        np.testing.assert_array_equal(variable.numpy()[1], saved[variable_key(variable)][1])  # de: the file's
        if variable_key(variable).endswith(("up_kernel", "up_bias")):
            np.testing.assert_array_equal(variable.numpy()[0], 0.0)  # en: the identity it started as


def test_language_layers_of_another_base_are_refused(preset, tmp_path):
    other = load_pretrained_encoder(fixtures.write_xlm_roberta_preset(tmp_path / "other", seed=7), ["en", "de"],
                                    language_specific="adapter", adapter_dim=4)  # fmt: skip
    path = save_language_module(other, "de", str(tmp_path / "de.npz"))
    config = _config(preset, tmp_path, finetune={"language_layers": [path]})
    with pytest.raises(ValueError, match=r"config field finetune\.language_layers: .*de\.npz: these language "
                                         r"layers were saved from a different base model"):  # fmt: skip
        run_finetuning(config, str(tmp_path / "refused"), "train")
    config = _config(preset, tmp_path, finetune={"language_layers": [path]}, data={"languages": ["en"]})
    with pytest.raises(ValueError, match=r"de\.npz holds languages \['de'\], which the model does not have"):
        run_finetuning(config, str(tmp_path / "missing"), "train")


@pytest.mark.slow
def test_meta_ls_finetuning_runs_on_the_preset(preset, tmp_path):
    config = _config(preset, tmp_path, meta={"enabled": True},
                     data={"batching": "one_language", "meta_examples_per_language": 2},
                     trainer={"train_steps": 2, "eval_interval": 2, "checkpoint_interval": 2})
    metrics = run_finetuning(config, str(tmp_path / "meta"), "train_and_eval")
    assert metrics["step"] == 2
    assert all(np.isfinite(metrics[f"loss/{code}"]) for code in ("en", "de"))


def test_language_specific_layers_are_checked_against_the_presets_depth(preset, tmp_path):
    config = _config(preset, tmp_path, model={"language_specific_layers": [7]})
    configs.validate(config)  # the config alone cannot know the preset's depth
    with pytest.raises(ValueError, match=r"language_specific_layers: \[7\] out of range; the preset in .* has 2 layers"):
        run_finetuning(config, str(tmp_path / "deep"), "train")


def test_meta_ls_finetuning_needs_labelled_languages(preset, tmp_path):
    config = _config(preset, tmp_path, meta={"enabled": True}, data={"batching": "one_language"})
    config.finetune.meta_files = ""
    with pytest.raises(ValueError, match="at least two languages"):
        run_finetuning(config, str(tmp_path / "meta"), "train")


@pytest.mark.slow
def test_exported_model_serves_with_the_presets_tokenizer(preset, finetuned, tmp_path):
    import tensorflow_text  # noqa: F401 - registers the tokenizer's ops before loading

    from serving import op_check
    from serving import signatures as sig
    from serving.client import RestClient, text_inputs
    from serving.export import export_model_dir
    from serving.model_manager import ModelConfig
    from serving.server import ModelServer

    model_dir, _ = finetuned
    export = export_model_dir(model_dir, str(tmp_path / "exports"), "xlmr", 1)
    loaded = tf.saved_model.load(export)
    texts = ["the quick fox", "der faule hund schläft über"]
    inputs = text_inputs(texts, ["en", "de"])
    direct = {k: v.numpy() for k, v in loaded.signatures[sig.SENTENCE_CLASSIFICATION](
        **{k: tf.constant(v) for k, v in inputs.items()}).items()}
    # The SavedModel tokenizes as the preset's keras-hub tokenizer does (fairseq ids, <pad>=1).
    served_ids = loaded.signatures[sig.SERVE_TEXT](**{k: tf.constant(v) for k, v in inputs.items()})["token_ids"]
    reference = load_keras_hub_tokenizer(preset)(tf.constant(texts))
    reference = reference if isinstance(reference, list) else reference.to_list()
    packed = [[0] + ids[:14] + [2] for ids in reference]  # 16 positions
    width = max(len(ids) for ids in packed)
    expected = [ids + [1] * (width - len(ids)) for ids in packed]
    assert width == 16 and len(packed[0]) < 16  # one row truncated, one padded with <pad>=1
    assert served_ids.numpy().tolist() == expected
    # Direct call of the restored model equals the export.
    model = _trained_model(model_dir)
    outputs = model({"token_ids": served_ids, "padding_mask": tf.cast(tf.not_equal(served_ids, 1), tf.int32),
                     "language_ids": tf.constant([0, 1])}, outputs=["sentence_logits"])
    np.testing.assert_allclose(direct["probabilities"], tf.nn.softmax(outputs["sentence_logits"]).numpy(),
                               atol=1e-5)
    # Its text ops are the ones TF Serving's tensorflow-text links (the allow-list).
    unknown = op_check.ops_not_in_core_tensorflow(op_check.signature_op_types(export, sig.SENTENCE_CLASSIFICATION))
    assert unknown <= op_check.read_allowlist(), unknown - op_check.read_allowlist()
    server = ModelServer([ModelConfig("xlmr", os.path.dirname(export))], grpc_port=0, rest_port=0,
                         poll_seconds=0).start()
    try:
        client = RestClient(f"127.0.0.1:{server.rest_port}", "xlmr")
        try:
            served = client.predict(inputs, sig.SENTENCE_CLASSIFICATION)
        finally:
            client.close()
    finally:
        server.stop()
    for key, value in direct.items():
        if value.dtype == object:
            assert [v.decode() if isinstance(v, bytes) else v for v in value.tolist()] == list(served[key]), key
        else:
            np.testing.assert_allclose(np.asarray(served[key], dtype=value.dtype), value, atol=1e-5, err_msg=key)
