"""Hugging Face directories (written here with the safetensors library): fields honoured or refused, files checked.

The reference outputs come from a BERT / XLM-R forward pass written below in
numpy (float64) from the tensors the test wrote, following Hugging Face's
modelling code (XLM-R's position ids included), not from the converter.
"""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from tests.models import pretrained_fixtures as fixtures
from tf_metaling.models import pretrained
from tf_metaling.models.pretrained import (
    PresetError,
    load_pretrained_encoder,
    load_pretrained_model,
    load_pretrained_tokenizer,
    read_preset,
)

ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0))),
    "gelu_new": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
    "gelu_pytorch_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
    "relu": lambda x: np.maximum(x, 0.0),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "quick_gelu": lambda x: x / (1.0 + np.exp(-1.702 * x)),
}
TOKEN_IDS = np.array([[2, 11, 9, 13, 5, 7, 3, 0, 0], [2, 8, 10, 4, 7, 12, 20, 30, 3]], np.int32)


def _layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def reference_forward(tensors, config, token_ids, pad_id, prefix="", norm=("weight", "bias")):
    """Hugging Face's BertModel / XLMRobertaModel sequence output in float64 (no dropout)."""
    w = {name: np.asarray(value, np.float64) for name, value in tensors.items()}
    eps, act = config["layer_norm_eps"], ACTIVATIONS[config["hidden_act"]]
    d, heads = config["hidden_size"], config["num_attention_heads"]
    batch, length = token_ids.shape
    mask = (token_ids != pad_id).astype(np.int64)
    if config["model_type"] == "xlm-roberta":  # create_position_ids_from_input_ids
        position_ids = np.cumsum(mask, axis=1) * mask + config["pad_token_id"]
    else:
        position_ids = np.broadcast_to(np.arange(length), token_ids.shape)
    p = prefix
    x = (w[f"{p}embeddings.word_embeddings.weight"][token_ids] + w[f"{p}embeddings.position_embeddings.weight"][position_ids]
         + w[f"{p}embeddings.token_type_embeddings.weight"][0])  # fmt: skip
    x = _layer_norm(x, w[f"{p}embeddings.LayerNorm.{norm[0]}"], w[f"{p}embeddings.LayerNorm.{norm[1]}"], eps)
    bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min)
    for i in range(config["num_hidden_layers"]):
        layer = f"{p}encoder.layer.{i}."

        def linear(v, name, layer=layer):
            return v @ w[f"{layer}{name}.weight"].T + w[f"{layer}{name}.bias"]

        def split(v):
            return v.reshape(batch, length, heads, d // heads).transpose(0, 2, 1, 3)

        q, k, v = (split(linear(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // heads) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, d)
        x = _layer_norm(x + linear(context, "attention.output.dense"), w[f"{layer}attention.output.LayerNorm.{norm[0]}"],
                        w[f"{layer}attention.output.LayerNorm.{norm[1]}"], eps)  # fmt: skip
        ffn = linear(act(linear(x, "intermediate.dense")), "output.dense")
        x = _layer_norm(
            x + ffn, w[f"{layer}output.LayerNorm.{norm[0]}"], w[f"{layer}output.LayerNorm.{norm[1]}"], eps
        )
    return x, mask.astype(bool)


def _convert(directory, language_specific="adapter"):
    encoder = load_pretrained_encoder(
        directory, ["en", "de"], language_specific=language_specific, adapter_dim=4
    )
    return encoder


def _run(encoder, token_ids):
    return encoder({"token_ids": tf.constant(token_ids), "language_ids": tf.constant([0, 1])}).numpy()


def _assert_matches_reference(encoder, tensors, config, token_ids=TOKEN_IDS, **layout):
    expected, keep = reference_forward(tensors, config, token_ids, encoder.pad_token_id, **layout)
    got = _run(encoder, token_ids)
    assert np.abs(expected[keep]).max() > 0.5  # not a comparison of near-zero outputs
    np.testing.assert_allclose(got[keep], expected[keep], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "hidden_act", ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "quick_gelu"]
)
def test_bert_output_equals_numpy_reference_for_each_activation(tmp_path, hidden_act):
    config = fixtures.hugging_face_config("bert", hidden_act=hidden_act)
    tensors = fixtures.random_hugging_face_tensors(config, seed=1)
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "bert", config, tensors, {"do_lower_case": True}
    )
    encoder = _convert(directory)
    assert encoder.activation == pretrained.HF_ACTIVATIONS[hidden_act]
    _assert_matches_reference(encoder, tensors, config)


def test_exact_and_tanh_gelu_are_told_apart(tmp_path):
    """The same weights with gelu and gelu_new give outputs further apart than the tolerance."""
    outputs = {}
    for act in ("gelu", "gelu_new"):
        config = fixtures.hugging_face_config("bert", hidden_act=act)
        tensors = fixtures.random_hugging_face_tensors(config, seed=1)
        outputs[act] = _run(
            _convert(fixtures.write_hugging_face_directory(tmp_path / act, config, tensors, {})), TOKEN_IDS
        )
    assert np.abs(outputs["gelu"] - outputs["gelu_new"]).max() > 1e-4


def test_layer_norm_epsilon_is_honoured(tmp_path):
    config = fixtures.hugging_face_config("bert", layer_norm_eps=1e-5)
    tensors = fixtures.random_hugging_face_tensors(config, seed=2)
    # Small hidden states make the epsilon matter: scale the word embeddings down.
    tensors["embeddings.word_embeddings.weight"] *= 1e-3
    tensors["embeddings.position_embeddings.weight"] *= 1e-3
    tensors["embeddings.token_type_embeddings.weight"] *= 1e-3
    directory = fixtures.write_hugging_face_directory(tmp_path / "eps", config, tensors, {})
    encoder = _convert(directory)
    assert encoder.layer_norm_epsilon == 1e-5
    _assert_matches_reference(encoder, tensors, config)
    wrong, keep = reference_forward(tensors, dict(config, layer_norm_eps=1e-12), TOKEN_IDS, 0)
    assert np.abs(_run(encoder, TOKEN_IDS)[keep] - wrong[keep]).max() > 1e-3  # 1e-12 would be visibly wrong


@pytest.mark.parametrize("storage", ["prefixed_gamma_beta", "sharded", "float16"])
def test_bert_storage_variants(tmp_path, storage):
    """Task-model prefixes ("bert."), old gamma/beta names, sharded checkpoints, float16 tensors."""
    config = fixtures.hugging_face_config("bert", hidden_act="relu", layer_norm_eps=1e-6)
    layout = {"prefix": "bert.", "norm": ("gamma", "beta")} if storage == "prefixed_gamma_beta" else {}
    tensors = fixtures.random_hugging_face_tensors(config, seed=3, **layout)
    dtype = np.float16 if storage == "float16" else None
    directory = fixtures.write_hugging_face_directory(
        tmp_path / storage, config, tensors, {}, shards=3 if storage == "sharded" else 1, dtype=dtype
    )
    if dtype is not None:  # the reference sees the values the file holds
        tensors = {
            name: value.astype(dtype) if value.dtype.kind == "f" else value for name, value in tensors.items()
        }
    _assert_matches_reference(_convert(directory), tensors, config, **layout)


@pytest.mark.parametrize("language_specific", [None, ["adapter", "attention", "ffn", "layer_norm"]])
def test_xlm_roberta_positions_offset_and_padding(tmp_path, language_specific):
    config = fixtures.hugging_face_config("xlm-roberta", layer_norm_eps=1e-5, hidden_act="gelu")
    tensors = fixtures.random_hugging_face_tensors(config, seed=4, prefix="roberta.")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "xlmr", config, tensors, None
    )  # no tokenizer_config
    encoder = _convert(directory, language_specific)
    assert (encoder.pad_token_id, encoder.max_sequence_length, encoder.num_segments) == (1, 16, None)
    token_ids = np.where(TOKEN_IDS == 0, 1, TOKEN_IDS)  # XLM-R pads with 1
    token_ids[:, 0] = 0
    _assert_matches_reference(encoder, tensors, config, token_ids, prefix="roberta.")


def test_masked_lm_head_of_a_hugging_face_checkpoint(tmp_path):
    config = fixtures.hugging_face_config("bert", hidden_act="gelu_new", layer_norm_eps=1e-7)
    tensors = fixtures.random_hugging_face_tensors(config, seed=5, prefix="bert.", masked_lm=True)
    directory = fixtures.write_hugging_face_directory(tmp_path / "mlm", config, tensors, {})
    assert read_preset(directory).has_masked_lm
    model = load_pretrained_model(
        directory, ["en", "de"], masked_lm=True, language_specific="adapter", adapter_dim=4
    )
    positions = np.array([[1, 2], [3, 5]], np.int32)
    logits = model({"token_ids": tf.constant(TOKEN_IDS), "language_ids": tf.constant([0, 1]),
                    "mask_positions": tf.constant(positions)})["masked_lm_logits"].numpy()  # fmt: skip
    hidden, _ = reference_forward(tensors, config, TOKEN_IDS, 0, prefix="bert.")
    w = {name: np.asarray(value, np.float64) for name, value in tensors.items()}
    gathered = np.take_along_axis(hidden, positions[..., None], axis=1)
    h = ACTIVATIONS["gelu_new"](gathered @ w["cls.predictions.transform.dense.weight"].T
                                + w["cls.predictions.transform.dense.bias"])  # fmt: skip
    h = _layer_norm(h, w["cls.predictions.transform.LayerNorm.weight"], w["cls.predictions.transform.LayerNorm.bias"],
                    1e-7)  # fmt: skip
    expected = h @ w["bert.embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_activation_is_saved_with_the_model(tmp_path):
    config = fixtures.hugging_face_config("bert", hidden_act="relu")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "relu", config, fixtures.random_hugging_face_tensors(config), {}
    )
    encoder = _convert(directory)
    rebuilt = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert rebuilt.activation == "relu" and rebuilt.get_config() == encoder.get_config()
    assert all(block.feed_forward.activation is keras.activations.relu for block in rebuilt.blocks)


# ------------------------------------------------------------------ refused fields
@pytest.mark.parametrize(
    "field, value, why",
    [
        ("position_embedding_type", "relative_key", "absolute learned positions only"),
        ("hidden_act", "gelu_10", "supported:"),
        ("hidden_act", "leaky_relu", "supported:"),
        ("is_decoder", True, "bidirectional encoder"),
        ("num_attention_heads", 3, "must divide hidden_size=8"),
        ("pruned_heads", {"0": [1]}, "different shapes"),
        ("layer_norm_eps", 0, "must be positive"),
        ("max_position_embeddings", "512", "expected an integer"),
    ],
)
def test_unsupported_fields_are_refused_naming_file_and_field(tmp_path, monkeypatch, field, value, why):
    config = fixtures.hugging_face_config("bert", **{field: value})
    good = fixtures.hugging_face_config("bert")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "bad", config, fixtures.random_hugging_face_tensors(good), {}
    )
    built = _forbid_building(monkeypatch)
    with pytest.raises(PresetError) as error:
        load_pretrained_encoder(directory, ["en"])
    message = str(error.value)
    assert message.startswith(os.path.join(directory, "config.json") + ": field " + f"{field}={value!r}"), (
        message
    )
    assert why in message
    assert built == []


def test_xlm_roberta_padding_id_other_than_the_tokenizers_is_refused(tmp_path):
    config = fixtures.hugging_face_config("xlm-roberta", pad_token_id=0)
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "xlmr",
        config,
        fixtures.random_hugging_face_tensors(fixtures.hugging_face_config("xlm-roberta")),
        None,
    )
    with pytest.raises(PresetError, match=r"config\.json: field pad_token_id=0 is not supported: XLM-R's"):
        read_preset(directory)


def test_unknown_fields_are_named_in_a_warning(tmp_path):
    config = fixtures.hugging_face_config("bert", rotary_dim=4)
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "extra", config, fixtures.random_hugging_face_tensors(config), {}
    )
    with pytest.warns(UserWarning, match=r"config\.json: fields \['rotary_dim'\] are not BERT/XLM-R"):
        read_preset(directory)


# ------------------------------------------------------------------ broken weight files
def _forbid_building(monkeypatch):
    """Records any attempt to build an encoder or a keras-hub backbone (there must be none)."""
    import keras_hub

    built = []

    def record(*args, **kwargs):
        built.append((args, kwargs))
        raise AssertionError("a layer was built before the checkpoint was checked")

    monkeypatch.setattr(pretrained, "MultilingualEncoder", record)
    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", record)
    return built


@pytest.fixture
def good_directory(tmp_path):
    config = fixtures.hugging_face_config("bert")
    return fixtures.write_hugging_face_directory(
        tmp_path / "good", config, fixtures.random_hugging_face_tensors(config), {}
    )


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])


def _garbage(path):
    open(path, "wb").write(np.random.RandomState(0).bytes(5000))


def _rewrite(path, edit):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            _truncate,
            r"model\.safetensors: tensor '[^']+' needs bytes \d+-\d+ but the file has \d+ bytes: truncated",
        ),
        (_garbage, r"model\.safetensors: header length \d+ does not fit the file's 5000 bytes"),
        (lambda p: open(p, "wb").write(b"\x05\x00"), r"model\.safetensors: 2 bytes, too short"),
        (
            lambda p: _rewrite(p, lambda t: t.pop("encoder.layer.1.output.dense.weight")),
            r"model\.safetensors: tensor 'encoder\.layer\.1\.output\.dense\.weight' missing",
        ),
        (
            lambda p: _rewrite(
                p, lambda t: t.update({"encoder.layer.0.intermediate.dense.bias": np.zeros(15, np.float32)})
            ),
            r"model\.safetensors: tensor 'encoder\.layer\.0\.intermediate\.dense\.bias' has shape \[15\], expected \[16\]",
        ),
        (
            lambda p: _rewrite(p, lambda t: t.update({"encoder.layer.2.output.dense.bias": np.ones(8, np.float32)})),
            r"model\.safetensors: tensor 'encoder\.layer\.2\.output\.dense\.bias' is not part of the encoder "
            r".*config\.json describes",
        ),
        (
            lambda p: _rewrite(p, lambda t: t.update({"embeddings.LayerNorm.weight": np.ones(8, np.int32)})),
            r"model\.safetensors: tensor 'embeddings\.LayerNorm\.weight' has dtype I32",
        ),
    ],
    ids=["truncated", "garbage", "too_short", "tensor_missing", "wrong_shape", "extra_layer", "wrong_dtype"],
)
def test_broken_safetensors_fail_naming_file_and_tensor_before_building(
    good_directory, monkeypatch, damage, message
):
    path = os.path.join(good_directory, "model.safetensors")
    damage(path)
    built = _forbid_building(monkeypatch)
    with pytest.raises(PresetError, match=re.escape(good_directory) + "/" + message):
        load_pretrained_encoder(good_directory, ["en"])
    assert built == []


@pytest.fixture
def sharded_directory(tmp_path):
    config = fixtures.hugging_face_config("bert")
    return fixtures.write_hugging_face_directory(
        tmp_path / "sharded", config, fixtures.random_hugging_face_tensors(config), {}, shards=2
    )


def _edit_index(directory, edit):
    path = os.path.join(directory, "model.safetensors.index.json")
    index = json.load(open(path))
    edit(index)
    json.dump(index, open(path, "w"))


def _map_to_the_other_shard(index, name="encoder.layer.0.output.dense.bias"):
    shards = sorted(set(index["weight_map"].values()))
    index["weight_map"][name] = shards[1 - shards.index(index["weight_map"][name])]


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda d: os.remove(os.path.join(d, "model-00002-of-00002.safetensors")),
            r"model\.safetensors\.index\.json: tensor '[^']+' is in shard .*model-00002-of-00002\.safetensors, which is missing",
        ),
        (
            lambda d: open(os.path.join(d, "model.safetensors.index.json"), "w").write("{not json"),
            r"model\.safetensors\.index\.json: not readable JSON",
        ),
        (
            lambda d: _edit_index(d, lambda i: i.pop("weight_map")),
            r"model\.safetensors\.index\.json: no \"weight_map\"",
        ),
        (
            lambda d: _edit_index(d, _map_to_the_other_shard),
            r"model\.safetensors\.index\.json: tensor 'encoder\.layer\.0\.output\.dense\.bias' is mapped to .*, which does not hold it",
        ),
        (
            lambda d: _edit_index(
                d, lambda i: i["weight_map"].pop("encoder.layer.1.attention.self.key.weight")
            ),
            r"model\.safetensors\.index\.json: tensor 'encoder\.layer\.1\.attention\.self\.key\.weight' missing",
        ),
        (
            lambda d: _edit_index(d, lambda i: i["weight_map"].update({"x": "../elsewhere.safetensors"})),
            r"model\.safetensors\.index\.json: tensor 'x' maps to '\.\./elsewhere\.safetensors'",
        ),
        (
            lambda d: _truncate(os.path.join(d, "model-00001-of-00002.safetensors")),
            r"model-00001-of-00002\.safetensors: tensor '[^']+' needs bytes .* truncated",
        ),
    ],
    ids=[
        "shard_missing",
        "index_not_json",
        "no_weight_map",
        "tensor_not_in_shard",
        "tensor_not_listed",
        "path_outside",
        "shard_truncated",
    ],
)
def test_broken_shard_index_fails_naming_the_file_before_building(
    sharded_directory, monkeypatch, damage, message
):
    damage(sharded_directory)
    built = _forbid_building(monkeypatch)
    with pytest.raises(PresetError, match=re.escape(sharded_directory) + "/" + message):
        load_pretrained_encoder(sharded_directory, ["en"])
    assert built == []


def test_sharded_checkpoint_equals_single_file(tmp_path, sharded_directory):
    config = fixtures.hugging_face_config("bert")
    single = fixtures.write_hugging_face_directory(
        tmp_path / "single", config, fixtures.random_hugging_face_tensors(config), {}
    )
    np.testing.assert_array_equal(
        _run(_convert(sharded_directory), TOKEN_IDS), _run(_convert(single), TOKEN_IDS)
    )


def test_pytorch_only_directory_says_how_to_convert(good_directory, monkeypatch):
    os.rename(
        os.path.join(good_directory, "model.safetensors"), os.path.join(good_directory, "pytorch_model.bin")
    )
    with pytest.raises(
        PresetError,
        match=r"model\.safetensors: missing; the directory has only pytorch_model\.bin .*"
        r"save_pretrained\(.*safe_serialization=True\)",
    ):
        read_preset(good_directory)


# ------------------------------------------------------------------ tokenizer files
TEXTS = [
    "Über den faulen Hund, naïve Café!",
    "The QUICK brown fox",
    "狐狸跳过了",
    "Ünïcödé ÀCCENTS and   spaces",
]


def _hugging_face_wordpiece_ids(vocabulary_file, **options):
    """Hugging Face's BERT tokenizer (the `tokenizers` library, with BertTokenizerFast's defaults)."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(vocabulary_file, **options)
    return [tokenizer.encode(text, add_special_tokens=False).ids for text in TEXTS]


@pytest.mark.parametrize(
    "tokenizer_config, reference_options",
    [
        (
            {"tokenizer_class": "BertTokenizer"},
            {},
        ),  # do_lower_case missing: Hugging Face lower-cases, strips accents
        (None, {}),  # no tokenizer_config.json at all: the same defaults
        ({"do_lower_case": False}, {"lowercase": False}),
        ({"do_lower_case": True, "strip_accents": False}, {"strip_accents": False}),
    ],
    ids=["do_lower_case_missing", "no_tokenizer_config", "cased", "lower_case_keeping_accents"],
)
def test_wordpiece_settings_match_hugging_face_defaults(tmp_path, tokenizer_config, reference_options):
    config = fixtures.hugging_face_config("bert")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "tok", config, fixtures.random_hugging_face_tensors(config), tokenizer_config
    )
    expected = _hugging_face_wordpiece_ids(os.path.join(directory, "vocab.txt"), **reference_options)
    assert load_pretrained_tokenizer(directory).tokenize(tf.constant(TEXTS)).to_list() == expected
    if tokenizer_config is None or "do_lower_case" not in tokenizer_config:
        assert expected[0][:2] == [fixtures.bert_vocabulary().index(t) for t in ("u", "##b")]  # Ü -> u


def test_xlm_roberta_directory_without_tokenizer_config_loads(tmp_path):
    import keras_hub

    config = fixtures.hugging_face_config("xlm-roberta")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "xlmr", config, fixtures.random_hugging_face_tensors(config), None
    )
    assert not os.path.exists(os.path.join(directory, "tokenizer_config.json"))
    info = read_preset(directory)
    assert (info.tokenizer_kind, info.pad_token_id) == ("sentencepiece", 1)
    reference = keras_hub.models.XLMRobertaTokenizer(proto=fixtures.sentencepiece_proto())
    texts = tf.constant(fixtures.MULTILINGUAL_TEXTS)
    expected = reference(texts)
    expected = expected if isinstance(expected, list) else expected.to_list()
    assert any(expected) and load_pretrained_tokenizer(directory).tokenize(texts).to_list() == expected


@pytest.mark.parametrize(
    "setup, message",
    [
        (
            lambda d: os.remove(os.path.join(d, "vocab.txt")),
            r"vocab\.txt: missing; BertTokenizer reads its vocabulary",
        ),
        (
            lambda d: json.dump(
                {"tokenizer_class": "GPT2Tokenizer"}, open(os.path.join(d, "tokenizer_config.json"), "w")
            ),
            r"tokenizer_config\.json: field tokenizer_class='GPT2Tokenizer' is not supported",
        ),
        (
            lambda d: json.dump(
                {"do_lower_case": "yes"}, open(os.path.join(d, "tokenizer_config.json"), "w")
            ),
            r"tokenizer_config\.json: field do_lower_case='yes'; expected true or false",
        ),
        (
            lambda d: json.dump(
                {"tokenize_chinese_chars": False}, open(os.path.join(d, "tokenizer_config.json"), "w")
            ),
            r"tokenizer_config\.json: field tokenize_chinese_chars=false is not supported",
        ),
        (
            lambda d: open(os.path.join(d, "tokenizer_config.json"), "w").write("{"),
            r"tokenizer_config\.json: not readable JSON",
        ),
    ],
    ids=["vocab_missing", "tokenizer_class", "bad_value", "no_cjk_split", "not_json"],
)
def test_tokenizer_file_problems_name_the_file(good_directory, setup, message):
    setup(good_directory)
    with pytest.raises(PresetError, match=re.escape(good_directory) + "/" + message):
        load_pretrained_tokenizer(good_directory)


def test_sentencepiece_model_missing_names_it(tmp_path):
    config = fixtures.hugging_face_config("xlm-roberta")
    directory = fixtures.write_hugging_face_directory(
        tmp_path / "xlmr", config, fixtures.random_hugging_face_tensors(config), None
    )
    os.remove(os.path.join(directory, "sentencepiece.bpe.model"))
    with pytest.raises(PresetError, match=r"sentencepiece\.bpe\.model: missing; XLMRobertaTokenizer reads"):
        read_preset(directory)
