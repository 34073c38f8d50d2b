"""Converted keras-hub backbones: same outputs, same token ids, identity LS layers, exact meta-gradients."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import directional_meta_gradient, random_batch
from tests.models import pretrained_fixtures as fixtures
from tf_metaling import checkpoints
from tf_metaling.losses import masked_lm_example_losses
from tf_metaling.meta.meta_step import MetaOptions, MetaStep
from tf_metaling.models import MultilingualModel
from tf_metaling.models.pretrained import (
    PresetError,
    convert_backbone,
    load_backbone,
    load_keras_hub_tokenizer,
    load_pretrained_encoder,
    load_pretrained_model,
    load_pretrained_tokenizer,
    read_preset,
)
from tf_metaling.optimizers import RowSparseAdam

keras_hub = pytest.importorskip("keras_hub")

ARCHITECTURES = ["bert", "xlm_roberta"]
LS_KINDS = [None, "adapter", ["adapter", "attention", "ffn", "layer_norm"]]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {
        "bert": fixtures.write_bert_preset(root / "bert"),
        "xlm_roberta": fixtures.write_xlm_roberta_preset(root / "xlm_roberta"),
        "bert_masked_lm": fixtures.write_bert_preset(root / "bert_masked_lm", masked_lm=True, seed=3),
    }


def _mixed_batch(preset, sequence_length=12):
    """Multilingual text, tokenised by the preset's own tokenizer, padded with its padding id."""
    tokenizer = load_pretrained_tokenizer(preset)
    inputs = tokenizer.encode(tf.constant(fixtures.SHORT_TEXTS), sequence_length)
    mask = inputs["padding_mask"].numpy()
    assert mask.min() == 0 and mask.max() == 1, "the batch must mix padded and full rows"
    return inputs, tf.constant([0, 1, 2, 3, 4])


def _keras_hub_output(backbone, inputs):
    arguments = {"token_ids": inputs["token_ids"], "padding_mask": inputs["padding_mask"]}
    if isinstance(backbone, keras_hub.models.BertBackbone):
        arguments["segment_ids"] = tf.zeros_like(inputs["token_ids"])
    outputs = backbone(arguments)
    return (outputs["sequence_output"] if isinstance(outputs, dict) else outputs).numpy()


@pytest.mark.parametrize("language_specific", LS_KINDS, ids=["shared", "adapters", "all_kinds"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_converted_encoder_equals_keras_hub(presets, architecture, language_specific):
    preset = presets[architecture]
    inputs, language_ids = _mixed_batch(preset)
    expected = _keras_hub_output(load_backbone(preset), inputs)
    encoder = load_pretrained_encoder(preset, fixtures.LANGUAGES, language_specific=language_specific)
    converted = encoder({**inputs, "language_ids": language_ids}).numpy()
    assert np.abs(expected).max() > 0.5  # the comparison is not between two near-zero outputs
    np.testing.assert_allclose(converted, expected, rtol=0, atol=1e-5)
    # Without an explicit mask, the encoder masks the preset's padding id (XLM-R pads with 1).
    implicit = encoder({"token_ids": inputs["token_ids"], "language_ids": language_ids}).numpy()
    np.testing.assert_allclose(implicit, expected, rtol=0, atol=1e-5)


def test_converted_shapes_and_padding_ids(presets):
    bert = load_pretrained_encoder(presets["bert"], fixtures.LANGUAGES)
    xlmr = load_pretrained_encoder(presets["xlm_roberta"], fixtures.LANGUAGES)
    assert (bert.pad_token_id, xlmr.pad_token_id) == (0, 1)
    assert (bert.num_segments, xlmr.num_segments) == (2, None)
    assert (bert.activation, xlmr.activation) == ("gelu_approximate", "gelu")
    assert (bert.layer_norm_epsilon, xlmr.layer_norm_epsilon) == (1e-12, 1e-5)
    for encoder in (bert, xlmr):
        assert (encoder.hidden_dim, encoder.num_layers, encoder.num_heads) == (8, 2, 2)
        assert encoder.max_sequence_length == 16
    # The converted encoder round-trips through its config (checkpoints rebuild it from model.json).
    rebuilt = keras.layers.deserialize(keras.layers.serialize(bert))
    assert rebuilt.get_config() == bert.get_config()


def test_segment_ids_reach_the_segment_embeddings(presets):
    backbone = load_backbone(presets["bert"])
    encoder = convert_backbone(backbone, fixtures.LANGUAGES)
    inputs, language_ids = _mixed_batch(presets["bert"])
    segments = tf.constant((np.arange(12)[None, :] >= 6).astype("int32").repeat(5, axis=0))
    expected = backbone({**inputs, "segment_ids": segments})["sequence_output"].numpy()
    converted = encoder({**inputs, "segment_ids": segments, "language_ids": language_ids}).numpy()
    np.testing.assert_allclose(converted, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tokenizer_ids_equal_keras_hub(presets, architecture, tmp_path):
    preset = presets[architecture]
    reference = load_keras_hub_tokenizer(preset)
    tokenizer = load_pretrained_tokenizer(preset)
    texts = tf.constant(fixtures.MULTILINGUAL_TEXTS)
    expected = reference(texts)
    expected = expected if isinstance(expected, list) else expected.to_list()
    assert tokenizer.tokenize(texts).to_list() == expected
    # A fine-tuning model_dir keeps the tokenizer in a file; reloaded, it gives the same ids.
    saved = tokenizer.save(str(tmp_path / tokenizer.file_name))
    assert checkpoints.load_tokenizer(saved).tokenize(texts).to_list() == expected
    assert any(ids for ids in expected[:5]) and tokenizer.vocab_size == reference.vocabulary_size()
    # Packing uses the preset's own start / end / padding ids.
    start, end, pad = (
        (reference.cls_token_id, reference.sep_token_id, reference.pad_token_id)
        if architecture == "bert"
        else (reference.start_token_id, reference.end_token_id, reference.pad_token_id)
    )
    packed = tokenizer.encode(texts, 24)["token_ids"].numpy()
    for row, ids in zip(packed, expected):
        want = [start] + ids[:22] + [end]
        assert row.tolist() == want + [pad] * (24 - len(want))
    if architecture == "xlm_roberta":
        assert (start, pad, end) == (0, 1, 2)  # fairseq ids


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tokenizer_text_ops_are_listed(presets, architecture):
    from serving import op_check
    from tests.tokenizers.test_wordpiece_tokenizer import _op_types
    from tf_metaling.tokenizers import BERT_PRETOKENIZER_OPS, SENTENCEPIECE_OPS

    tokenizer = load_pretrained_tokenizer(presets[architecture])
    strings = tf.TensorSpec([None], tf.string)
    functions = [
        tf.function(lambda s: tokenizer.encode(s, 16)).get_concrete_function(strings),
        tf.function(lambda a, b: tokenizer.encode_pairs(a, b, 16)).get_concrete_function(strings, strings),
        tf.function(lambda w: tokenizer.tokenize_pretokenized(w)).get_concrete_function(
            tf.RaggedTensorSpec([None, None], tf.string)
        ),
    ]
    ops = set().union(*(_op_types(f) for f in functions))
    custom = {op for op in ops if op not in set(dir(tf.raw_ops))}
    listed = set(SENTENCEPIECE_OPS) if architecture == "xlm_roberta" else (
        set(BERT_PRETOKENIZER_OPS) | {"FastWordpieceTokenizeWithOffsets"}
    )
    assert custom and custom <= listed, custom
    assert custom <= op_check.read_allowlist()  # exported text signatures may use them


def test_masked_lm_head_is_converted(presets):
    preset = presets["bert_masked_lm"]
    assert read_preset(preset).has_masked_lm
    task = keras_hub.models.MaskedLM.from_preset(preset, preprocessor=None)
    inputs, language_ids = _mixed_batch(preset)
    positions = tf.constant([[1, 2]] * 5)
    expected = task({**inputs, "segment_ids": tf.zeros_like(inputs["token_ids"]), "mask_positions": positions})
    model = load_pretrained_model(preset, fixtures.LANGUAGES, masked_lm=True, language_specific="adapter")
    logits = model({**inputs, "language_ids": language_ids, "mask_positions": positions})["masked_lm_logits"]
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), rtol=0, atol=1e-4)


def test_hugging_face_directory_converts_offline(presets, tmp_path):
    backbone = load_backbone(presets["bert"])
    directory = fixtures.write_hugging_face_bert(tmp_path / "hf_bert", backbone, fixtures.bert_vocabulary())
    info = read_preset(directory)
    assert (info.format, info.architecture, info.tokenizer_kind) == ("transformers", "bert", "wordpiece")
    inputs, language_ids = _mixed_batch(presets["bert"])
    hf_tokenizer = load_pretrained_tokenizer(directory)
    texts = tf.constant(fixtures.MULTILINGUAL_TEXTS)
    assert hf_tokenizer.tokenize(texts).to_list() == load_pretrained_tokenizer(presets["bert"]).tokenize(texts).to_list()
    encoder = load_pretrained_encoder(directory, fixtures.LANGUAGES, language_specific="adapter")
    converted = encoder({**inputs, "language_ids": language_ids}).numpy()
    np.testing.assert_allclose(converted, _keras_hub_output(backbone, inputs), rtol=0, atol=1e-5)


def test_meta_gradient_on_converted_model_matches_finite_differences(presets):
    backbone = load_backbone(presets["xlm_roberta"])
    encoder = convert_backbone(
        backbone, ["en", "de", "tr"], pad_token_id=1, language_specific=["adapter", "layer_norm"],
        adapter_dim=4, dropout=0.0, attention_dropout=0.0, dtype="float64",
    )
    keras.utils.set_random_seed(0)
    model = MultilingualModel(encoder, head_dropout=0.0)
    step = MetaStep(
        model,
        lambda outputs, batch: masked_lm_example_losses(outputs["masked_lm_logits"], batch),
        keras.optimizers.SGD(0.1),
        RowSparseAdam(1e-2),
        MetaOptions(inner_learning_rate=0.5),
        output_names=("masked_lm_logits",),
    )
    k = 1
    lookahead = random_batch(language_ids=(k, k, k, k), vocabulary_size=encoder.vocabulary_size, seed=11)
    meta = random_batch(batch=6, language_ids=(0, 0, 1, 1, 2, 2), vocabulary_size=encoder.vocabulary_size, seed=12)
    analytic, numeric = directional_meta_gradient(step, lookahead, meta, k)
    assert abs(analytic) > 1e-4
    assert abs(analytic - numeric) / abs(numeric) < 1e-4, (analytic, numeric)


# ------------------------------------------------------------------ errors
def _copy(preset, tmp_path, name="copy"):
    return shutil.copytree(preset, tmp_path / name)


def _edit_json(path, edit):
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    edit(data)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file)


def test_unsupported_architecture_fails_naming_config(presets, tmp_path):
    directory = _copy(presets["bert"], tmp_path)
    _edit_json(directory / "config.json", lambda c: c.update(registered_name="keras_hub>GPT2Backbone"))
    with pytest.raises(PresetError, match=r"config\.json: backbone 'keras_hub>GPT2Backbone' is not supported"):
        load_pretrained_encoder(directory, fixtures.LANGUAGES)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(PresetError, match=r"config\.json: model_type 'llama' is not supported"):
        read_preset(hf)


@pytest.mark.parametrize(
    "missing",
    ["config.json", "model.weights.h5", "tokenizer.json", os.path.join("assets", "tokenizer", "vocabulary.txt")],
)
def test_missing_file_fails_naming_it(presets, tmp_path, missing):
    directory = _copy(presets["bert"], tmp_path)
    os.remove(directory / missing)
    with pytest.raises(PresetError) as error:
        load_pretrained_encoder(directory, fixtures.LANGUAGES)
    assert str(error.value).startswith(f"{directory / missing}: missing")


def test_vocabulary_that_does_not_match_the_embeddings_fails(presets, tmp_path):
    directory = _copy(presets["bert"], tmp_path)
    vocabulary = directory / "assets" / "tokenizer" / "vocabulary.txt"
    with open(vocabulary, "a", encoding="utf-8") as file:
        file.write("extra\n")
    size = len(fixtures.bert_vocabulary())
    with pytest.raises(PresetError, match=rf"vocabulary\.txt: the vocabulary has {size + 1} ids but the embedding "
                                          rf"matrix has {size} rows"):
        load_pretrained_tokenizer(directory)
    spm = _copy(presets["xlm_roberta"], tmp_path, "xlmr")
    _edit_json(spm / "config.json", lambda c: c["config"].update(vocabulary_size=c["config"]["vocabulary_size"] - 3))
    with pytest.raises(PresetError, match=r"vocabulary\.spm: the vocabulary has \d+ ids but the embedding"):
        load_pretrained_encoder(spm, fixtures.LANGUAGES)
    # More embedding rows than ids (a padded checkpoint vocabulary) is fine.
    padded = _copy(presets["xlm_roberta"], tmp_path, "padded")
    _edit_json(padded / "config.json", lambda c: c["config"].update(vocabulary_size=c["config"]["vocabulary_size"] + 3))
    assert read_preset(padded).vocabulary_size == load_pretrained_tokenizer(padded).vocab_size + 3


def test_not_a_directory_fails(tmp_path):
    with pytest.raises(PresetError, match="not a directory"):
        read_preset(tmp_path / "nowhere")


def test_keras_hub_arguments_are_checked(presets, tmp_path):
    directory = _copy(presets["bert"], tmp_path)
    _edit_json(directory / "config.json", lambda c: c["config"].update(layer_norm_epsilon=1e-5))
    with pytest.raises(PresetError, match=r"config\.json: config\.layer_norm_epsilon=1e-05 is not an argument of "
                                          r"keras_hub>BertBackbone that tf_metaling converts"):  # fmt: skip
        read_preset(directory)
    heads = _copy(presets["bert"], tmp_path, "heads")
    _edit_json(heads / "config.json", lambda c: c["config"].update(num_heads=3))
    with pytest.raises(PresetError, match=r"config\.json: config\.hidden_dim=8 is not divisible by config\.num_heads=3"):
        read_preset(heads)


def test_a_presets_stated_activation_is_honoured(presets, tmp_path):
    """tf_metaling_encoder.json states a function the keras-hub class cannot (the built-in e5's exact GELU)."""
    directory = _copy(presets["bert"], tmp_path)
    (directory / "tf_metaling_encoder.json").write_text(json.dumps({"activation": "relu", "note": "trained so"}))
    encoder = load_pretrained_encoder(directory, fixtures.LANGUAGES)
    assert encoder.activation == "relu"
    inputs, language_ids = _mixed_batch(presets["bert"])
    backbone_output = _keras_hub_output(load_backbone(directory), inputs)  # the backbone cannot: tanh GELU
    assert np.abs(encoder({**inputs, "language_ids": language_ids}).numpy() - backbone_output).max() > 1e-2
    (directory / "tf_metaling_encoder.json").write_text(json.dumps({"activation": "gelu_10"}))
    with pytest.raises(PresetError, match=r"tf_metaling_encoder\.json: field activation='gelu_10'; expected one of"):
        read_preset(directory)
    (directory / "tf_metaling_encoder.json").write_text(json.dumps({"layer_norm_epsilon": 1e-5}))
    with pytest.raises(PresetError, match=r"tf_metaling_encoder\.json: field 'layer_norm_epsilon' is not one of"):
        read_preset(directory)
