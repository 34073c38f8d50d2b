"""Hugging Face checkpoint directories (BERT, XLM-R) read field by field and tensor by tensor, with numpy.

A directory holds ``config.json`` (``model_type`` ``bert`` or
``xlm-roberta``), the weights as ``model.safetensors`` or shards listed by
``model.safetensors.index.json``, and the tokenizer files (``vocab.txt``, or
``sentencepiece.bpe.model``; ``tokenizer_config.json`` optional). keras-hub is
not involved: keras-hub's converter keeps only the sizes, so a ``"relu"``
checkpoint would run GELU and ``layer_norm_eps`` would be ignored.

`HF_FIELDS` says how every config field the conversion knows is honoured or
refused; `HF_ACTIVATIONS` which ``hidden_act`` values are computed, exactly;
`HF_IGNORED_FIELDS` lists fields that do not change the encoder's function;
any other field is named in a warning. A field the project's layers cannot
compute exactly is refused with an error naming the file, the field and its
value. The tensors are checked against the config (`safetensors_file`) before
anything is built; tokenizer settings absent from ``tokenizer_config.json`` (or
the whole file) take Hugging Face's defaults.

XLM-R numbers positions from ``pad_token_id + 1`` and counts only non-padding
tokens; the converted encoder numbers every token from 0 with the table cut at
that offset, which gives Hugging Face's outputs for every non-padding token of
right-padded input (the project's tokenizers pad on the right).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from tf_metaling.models import safetensors_file
from tf_metaling.models.checkpoint_directory import (
    FAIRSEQ_PAD_ID,
    PresetError,
    PresetInfo,
    config_field,
    read_json,
    require_file,
    wordpiece_pad_id,
)

HF_MODEL_TYPES = {"bert": "bert", "xlm-roberta": "xlm_roberta"}
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILES = (safetensors_file.SINGLE_FILE, safetensors_file.INDEX_FILE)
PYTORCH_FILE = "pytorch_model.bin"
WORDPIECE_FILE = "vocab.txt"
SENTENCEPIECE_FILE = "sentencepiece.bpe.model"
# Hugging Face `hidden_act` -> the project's activation computing the same function.
# gelu_fast and gelu_accurate are the tanh GELU written differently (equal up to rounding).
HF_ACTIVATIONS = {
    "gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate", "gelu_fast": "gelu_approximate",
    "gelu_accurate": "gelu_approximate", "quick_gelu": "quick_gelu", "relu": "relu", "relu6": "relu6",
    "silu": "silu", "swish": "silu", "tanh": "tanh", "sigmoid": "sigmoid", "mish": "mish", "linear": "linear",
}  # fmt: skip
# BertConfig / XLMRobertaConfig defaults (transformers), used where config.json omits a field.
HF_DEFAULTS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
    "is_decoder": False, "add_cross_attention": False, "is_encoder_decoder": False, "pruned_heads": {},
    "tie_word_embeddings": True,
}  # fmt: skip
HF_PAD_TOKEN_ID = {"bert": 0, "xlm-roberta": 1}
# How every config.json field the conversion knows is treated (docs/checkpoints.md shows this table).
HF_FIELDS = {
    "model_type": "bert or xlm-roberta; anything else is refused",
    "vocab_size": "rows of the token embedding (>= the tokenizer's ids)",
    "hidden_size": "hidden_dim",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads; must divide hidden_size (head size hidden_size / heads)",
    "intermediate_size": "intermediate_dim",
    "hidden_act": "the feed-forward activation (HF_ACTIVATIONS); other values are refused",
    "layer_norm_eps": "every layer norm's epsilon",
    "max_position_embeddings": "positions (XLM-R: minus the pad_token_id + 1 offset rows)",
    "type_vocab_size": "segment embeddings (XLM-R with 1 type: folded into the positions)",
    "pad_token_id": "XLM-R: the position offset (pad_token_id + 1); must be the tokenizer's padding id",
    "position_embedding_type": "absolute only; relative_key / relative_key_query are refused",
    "is_decoder": "false only (a causal mask is not computed)",
    "add_cross_attention": "false only",
    "is_encoder_decoder": "false only",
    "pruned_heads": "empty only (pruned heads change shapes per layer)",
    "tie_word_embeddings": "true only when a masked-LM head is loaded (the head is tied)",
    "hidden_dropout_prob": "dropout (training only)",
    "attention_probs_dropout_prob": "attention_dropout (training only)",
    "initializer_range": "initializer_range (new weights only)",
}
# Fields that do not change the encoder's function (bookkeeping, heads, generation, pooler).
HF_IGNORED_FIELDS = {
    "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "bos_token_id",
    "eos_token_id", "sep_token_id", "cls_token_id", "classifier_dropout", "use_cache", "gradient_checkpointing",
    "id2label", "label2id", "num_labels", "problem_type", "finetuning_task", "output_attentions",
    "output_hidden_states", "return_dict", "chunk_size_feed_forward", "tokenizer_class", "output_past",
    "directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
    "pooler_size_per_head", "pooler_type", "torchscript", "_attn_implementation", "attn_implementation",
    "task_specific_params", "prefix", "decoder_start_token_id",
}  # fmt: skip
# Hugging Face BertTokenizer defaults (transformers) for an absent tokenizer_config.json field.
HF_BERT_TOKENIZER_DEFAULTS = {
    "do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True, "do_basic_tokenize": True,
    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
}  # fmt: skip
HF_TOKENIZER_CLASSES = {"BertTokenizer": "wordpiece", "XLMRobertaTokenizer": "sentencepiece"}
HF_DEFAULT_TOKENIZER = {"bert": "BertTokenizer", "xlm-roberta": "XLMRobertaTokenizer"}


def read_hugging_face_directory(directory, config_path, config) -> PresetInfo:
    """Checks a Hugging Face directory whose `config` was read from `config_path`; builds nothing."""
    model_type = config["model_type"]
    if model_type not in HF_MODEL_TYPES:
        raise PresetError(
            f"{config_path}: model_type {model_type!r} is not supported; supported: {sorted(HF_MODEL_TYPES)}."
        )
    architecture = HF_MODEL_TYPES[model_type]
    unknown = sorted(set(config) - set(HF_FIELDS) - HF_IGNORED_FIELDS)
    if unknown:
        # Not refused: real configs carry fields of their own (hub metadata, task settings). Said aloud.
        warnings.warn(
            f"{config_path}: fields {unknown} are not BERT/XLM-R architecture fields tf_metaling knows; "
            "they are not read. Check that they do not change what the encoder computes.",
            stacklevel=3,
        )
    defaults = dict(HF_DEFAULTS, pad_token_id=HF_PAD_TOKEN_ID[model_type])
    get = {name: config.get(name, default) for name, default in defaults.items()}

    def refuse(name, why):
        raise PresetError(f"{config_path}: field {name}={get[name]!r} is not supported: {why}.")

    sizes = {name: config_field(config_path, get, name, int, minimum=1) for name in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size")}  # fmt: skip
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        refuse("num_attention_heads", f"it must divide hidden_size={sizes['hidden_size']} (the head size)")
    if get["position_embedding_type"] != "absolute":
        refuse("position_embedding_type", "tf_metaling's encoder has absolute learned positions only")
    for name in ("is_decoder", "add_cross_attention", "is_encoder_decoder"):
        if get[name] is not False:
            refuse(name, "tf_metaling's encoder is a bidirectional encoder without cross-attention")
    if get["pruned_heads"]:
        refuse("pruned_heads", "pruned heads give layers different shapes")
    hidden_act = get["hidden_act"]
    if not isinstance(hidden_act, str) or hidden_act not in HF_ACTIVATIONS:
        refuse("hidden_act", f"supported: {sorted(HF_ACTIVATIONS)}")
    epsilon = config_field(config_path, get, "layer_norm_eps", (int, float))
    if not epsilon > 0:
        refuse("layer_norm_eps", "it must be positive")
    dropout = float(config_field(config_path, get, "hidden_dropout_prob", (int, float), minimum=0))
    attention_dropout = float(
        config_field(config_path, get, "attention_probs_dropout_prob", (int, float), minimum=0)
    )
    initializer_range = float(config_field(config_path, get, "initializer_range", (int, float), minimum=0))
    pad_token_id = config_field(config_path, get, "pad_token_id", int, minimum=0)
    tokenizer_kind, vocabulary_file, tokenizer_options = _read_transformers_tokenizer(directory, model_type)

    positions = sizes["max_position_embeddings"]
    num_segments = sizes["type_vocab_size"]
    if architecture == "xlm_roberta":
        # XLM-R numbers positions from pad_token_id + 1 (the rows before are never used); its
        # padding id must be the tokenizer's, since position ids are derived from it.
        if pad_token_id != FAIRSEQ_PAD_ID or tokenizer_kind != "sentencepiece":
            refuse("pad_token_id", f"XLM-R's SentencePiece tokenizer pads with {FAIRSEQ_PAD_ID}, and "
                                   "positions are offset by the padding id")  # fmt: skip
        positions -= pad_token_id + 1
        if positions < 1:
            refuse("max_position_embeddings", f"it leaves no positions after the offset {pad_token_id + 1}")
        if num_segments == 1:
            num_segments = None  # the one token type is folded into the positions
        encoder_pad_id = FAIRSEQ_PAD_ID
    else:
        encoder_pad_id = (
            FAIRSEQ_PAD_ID if tokenizer_kind == "sentencepiece"
            else wordpiece_pad_id(vocabulary_file, tokenizer_options["special_tokens"]["pad"])
        )  # fmt: skip

    entries, where = _read_safetensors(directory)
    prefix = _tensor_prefix(entries, where)
    norm = ("gamma", "beta") if f"{prefix}embeddings.LayerNorm.gamma" in entries else ("weight", "bias")
    expected = _hf_encoder_tensors(prefix, norm, sizes)
    head = _hf_masked_lm_tensors(architecture, norm, sizes["hidden_size"])
    has_masked_lm = next(iter(head)) in entries
    if has_masked_lm:
        bias = [name for name in _hf_masked_lm_bias_names(architecture) if name in entries]
        expected.update(head)
        expected[bias[0] if bias else _hf_masked_lm_bias_names(architecture)[0]] = (sizes["vocab_size"],)
    try:
        safetensors_file.check_tensors(entries, expected, where)
    except safetensors_file.SafetensorsError as error:
        raise PresetError(str(error)) from None
    # An encoder tensor the config does not account for (a layer more, relative-position
    # embeddings) means the file computes something else: refused, not ignored.
    encoder_parts = (f"{prefix}embeddings.", f"{prefix}encoder.")
    for name, entry in sorted(entries.items()):
        if name.startswith(encoder_parts) and name not in expected and not name.endswith(".position_ids"):
            raise PresetError(
                f"{entry.path}: tensor {name!r} is not part of the encoder {config_path} describes; "
                "weights and config do not belong together."
            )
    encoder_config = {
        "vocabulary_size": sizes["vocab_size"],
        "hidden_dim": sizes["hidden_size"],
        "num_layers": sizes["num_hidden_layers"],
        "num_heads": sizes["num_attention_heads"],
        "intermediate_dim": sizes["intermediate_size"],
        "max_sequence_length": positions,
        "dropout": dropout,
        "attention_dropout": attention_dropout,
        "activation": HF_ACTIVATIONS[hidden_act],
        "normalize_first": False,
        "language_embedding": False,
        "layer_norm_epsilon": float(epsilon),
        "initializer_range": initializer_range,
        "num_segments": num_segments,
        "pad_token_id": encoder_pad_id,
    }
    return PresetInfo(
        directory, "transformers", architecture, tokenizer_kind, vocabulary_file, sizes["vocab_size"],
        has_masked_lm, encoder_config, tokenizer_options=tokenizer_options,
        # BERT's head transform uses hidden_act; XLM-R's lm_head always the exact GELU.
        masked_lm_activation=HF_ACTIVATIONS[hidden_act] if architecture == "bert" else "gelu",
        masked_lm_layer_norm_epsilon=float(epsilon),
        tensors={name: entries[name] for name in expected}, tensor_prefix=prefix, layer_norm_names=norm,
    )  # fmt: skip


def _read_safetensors(directory):
    """``(tensor entries, the file that lists them)``, checked; the errors name the file."""
    if not any(os.path.isfile(os.path.join(directory, name)) for name in WEIGHTS_FILES):
        single = os.path.join(directory, WEIGHTS_FILES[0])
        if os.path.isfile(os.path.join(directory, PYTORCH_FILE)):
            raise PresetError(
                f"{single}: missing; the directory has only {PYTORCH_FILE} (a pickle, which tf_metaling "
                "does not load). Convert it once where torch and transformers are installed: python -c "
                f"\"from transformers import AutoModel; AutoModel.from_pretrained('{directory}')"
                f".save_pretrained('{directory}', safe_serialization=True)\" (AutoModelForMaskedLM keeps the "
                "masked-LM head)."
            )
        raise PresetError(f"{single}: missing; a Hugging Face directory needs its weights as safetensors.")
    try:
        entries = safetensors_file.read_index(directory)
    except safetensors_file.SafetensorsError as error:
        raise PresetError(str(error)) from None
    single = os.path.join(directory, WEIGHTS_FILES[0])
    return entries, single if os.path.isfile(single) else os.path.join(directory, WEIGHTS_FILES[1])


def _tensor_prefix(entries, where) -> str:
    """The prefix of the encoder's tensors: "" (BertModel), "bert." or "roberta." (task models)."""
    suffix = "embeddings.word_embeddings.weight"
    prefixes = sorted(name[: -len(suffix)] for name in entries if name.endswith(suffix))
    if not prefixes:
        raise PresetError(f"{where}: tensor {suffix!r} missing (nor under a prefix such as 'bert.').")
    return prefixes[0]


def _hf_encoder_tensors(prefix, norm, sizes) -> dict:
    """Hugging Face tensor names of the encoder -> their shapes (torch ``Linear``: ``[out, in]``)."""
    d, inner = sizes["hidden_size"], sizes["intermediate_size"]
    gamma, beta = norm
    tensors = {
        f"{prefix}embeddings.word_embeddings.weight": (sizes["vocab_size"], d),
        f"{prefix}embeddings.position_embeddings.weight": (sizes["max_position_embeddings"], d),
        f"{prefix}embeddings.token_type_embeddings.weight": (sizes["type_vocab_size"], d),
        f"{prefix}embeddings.LayerNorm.{gamma}": (d,),
        f"{prefix}embeddings.LayerNorm.{beta}": (d,),
    }
    for i in range(sizes["num_hidden_layers"]):
        layer = f"{prefix}encoder.layer.{i}."
        for name in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ):
            tensors[f"{layer}{name}.weight"] = (d, d)
            tensors[f"{layer}{name}.bias"] = (d,)
        tensors[f"{layer}intermediate.dense.weight"] = (inner, d)
        tensors[f"{layer}intermediate.dense.bias"] = (inner,)
        tensors[f"{layer}output.dense.weight"] = (d, inner)
        tensors[f"{layer}output.dense.bias"] = (d,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[f"{layer}{name}.{gamma}"] = (d,)
            tensors[f"{layer}{name}.{beta}"] = (d,)
    return tensors


def _hf_masked_lm_tensors(architecture, norm, d) -> dict:
    """The masked-LM head's transform tensors (the first one marks a head's presence)."""
    if architecture == "bert":
        dense, layer_norm = "cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm"
        gamma, beta = norm
    else:
        dense, layer_norm = "lm_head.dense", "lm_head.layer_norm"
        gamma, beta = "weight", "bias"
    return {f"{dense}.weight": (d, d), f"{dense}.bias": (d,), f"{layer_norm}.{gamma}": (d,),
            f"{layer_norm}.{beta}": (d,)}  # fmt: skip


def _hf_masked_lm_bias_names(architecture):
    return ("cls.predictions.bias", "cls.predictions.decoder.bias") if architecture == "bert" else (
        "lm_head.bias", "lm_head.decoder.bias")  # fmt: skip


def _special_token(value, path, name):
    """A tokenizer_config special token: a string or an AddedToken object (``{"content": ...}``)."""
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str) or not value:
        raise PresetError(f"{path}: field {name}={value!r}; expected a token string.")
    return value


def _read_transformers_tokenizer(directory, model_type):
    """``(kind, vocabulary file, WordPiece options)`` with Hugging Face's defaults for absent fields."""
    path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    config = read_json(path, required=False)
    if config is None:
        config = {}  # Hugging Face picks the tokenizer from model_type and uses its defaults
    elif not isinstance(config, dict):
        raise PresetError(f"{path}: not a JSON object.")
    tokenizer_class = config.get("tokenizer_class") or HF_DEFAULT_TOKENIZER[model_type]
    base_class = tokenizer_class[: -len("Fast")] if str(tokenizer_class).endswith("Fast") else tokenizer_class
    if base_class not in HF_TOKENIZER_CLASSES:
        raise PresetError(
            f"{path}: field tokenizer_class={tokenizer_class!r} is not supported; supported: "
            f"{sorted(HF_TOKENIZER_CLASSES)} (and their Fast versions)."
        )
    kind = HF_TOKENIZER_CLASSES[base_class]
    if kind == "sentencepiece":
        return (
            kind,
            require_file(directory, SENTENCEPIECE_FILE, f"{base_class} reads its vocabulary from it"),
            {},
        )
    vocabulary_file = require_file(directory, WORDPIECE_FILE, f"{base_class} reads its vocabulary from it")
    settings = {name: config.get(name, default) for name, default in HF_BERT_TOKENIZER_DEFAULTS.items()}
    for name in ("do_lower_case", "tokenize_chinese_chars", "do_basic_tokenize"):
        if not isinstance(settings[name], bool):
            raise PresetError(f"{path}: field {name}={settings[name]!r}; expected true or false.")
    if settings["strip_accents"] not in (None, True, False):
        raise PresetError(
            f"{path}: field strip_accents={settings['strip_accents']!r}; expected null, true or false."
        )
    for name in ("tokenize_chinese_chars", "do_basic_tokenize"):
        if not settings[name]:
            raise PresetError(
                f"{path}: field {name}=false is not supported: the project's BERT pretokenisation always "
                "splits on whitespace, punctuation and CJK characters."
            )
    # Hugging Face's BasicTokenizer: lower-casing strips accents unless strip_accents is false.
    strip_accents = (
        settings["do_lower_case"] if settings["strip_accents"] is None else settings["strip_accents"]
    )
    special = {role: _special_token(settings[f"{role}_token"], path, f"{role}_token")
               for role in ("pad", "unk", "cls", "sep", "mask")}  # fmt: skip
    return kind, vocabulary_file, {
        "lower_case": settings["do_lower_case"], "strip_accents": strip_accents, "special_tokens": special,
    }  # fmt: skip


# ---------------------------------------------------------------- weights
def hugging_face_weights(info: PresetInfo, masked_lm: bool = False) -> dict:
    """``{encoder variable key: array}`` from a checked directory's tensors (`tf_metaling.models.pretrained`'s layout).

    With `masked_lm` and a head in the directory, ``masked_lm_head/...`` entries too.
    """
    config = info.encoder_config
    prefix, (gamma, beta) = info.tensor_prefix, info.layer_norm_names

    def tensor(name):
        return safetensors_file.read_tensor(info.tensors[name])

    positions = tensor(f"{prefix}embeddings.position_embeddings.weight")
    token_types = tensor(f"{prefix}embeddings.token_type_embeddings.weight")
    if info.architecture == "xlm_roberta":
        positions = positions[info.pad_token_id + 1 :]
    weights = {
        "embedding/token_embeddings": tensor(f"{prefix}embeddings.word_embeddings.weight"),
        "embedding/embedding_norm/gamma": tensor(f"{prefix}embeddings.LayerNorm.{gamma}"),
        "embedding/embedding_norm/beta": tensor(f"{prefix}embeddings.LayerNorm.{beta}"),
    }
    if config["num_segments"] is None:
        positions = positions + token_types[0]  # token type 0 for every token (XLM-R's one type)
    else:
        weights["embedding/segment_embeddings"] = token_types
    weights["embedding/position_embeddings"] = positions
    for i in range(config["num_layers"]):
        layer, block = f"{prefix}encoder.layer.{i}.", f"block_{i}"
        projections = ("attention.self.query", "attention.self.key", "attention.self.value")
        # torch Linear weights are [out, in]; the project's kernels are [in, out].
        weights[f"{block}/attention/qkv_kernel"] = np.concatenate(
            [tensor(f"{layer}{p}.weight").T for p in projections], axis=1
        )
        weights[f"{block}/attention/qkv_bias"] = np.concatenate(
            [tensor(f"{layer}{p}.bias") for p in projections]
        )
        weights[f"{block}/attention/output_kernel"] = tensor(f"{layer}attention.output.dense.weight").T
        weights[f"{block}/attention/output_bias"] = tensor(f"{layer}attention.output.dense.bias")
        weights[f"{block}/feed_forward/intermediate_kernel"] = tensor(f"{layer}intermediate.dense.weight").T
        weights[f"{block}/feed_forward/intermediate_bias"] = tensor(f"{layer}intermediate.dense.bias")
        weights[f"{block}/feed_forward/output_kernel"] = tensor(f"{layer}output.dense.weight").T
        weights[f"{block}/feed_forward/output_bias"] = tensor(f"{layer}output.dense.bias")
        for target, source in (
            ("attention_norm", "attention.output.LayerNorm"),
            ("feed_forward_norm", "output.LayerNorm"),
        ):
            weights[f"{block}/{target}/gamma"] = tensor(f"{layer}{source}.{gamma}")
            weights[f"{block}/{target}/beta"] = tensor(f"{layer}{source}.{beta}")
    if masked_lm and info.has_masked_lm:
        weights.update(_transformers_masked_lm_weights(info, weights["embedding/token_embeddings"]))
    return weights


def _transformers_masked_lm_weights(info: PresetInfo, token_embeddings) -> dict:
    head = list(
        _hf_masked_lm_tensors(info.architecture, info.layer_norm_names, info.encoder_config["hidden_dim"])
    )
    dense_weight, dense_bias, norm_gamma, norm_beta = head
    bias = next(name for name in _hf_masked_lm_bias_names(info.architecture) if name in info.tensors)
    entries = safetensors_file.read_index(info.directory)
    decoder = "cls.predictions.decoder.weight" if info.architecture == "bert" else "lm_head.decoder.weight"
    config_path = os.path.join(info.directory, "config.json")
    if read_json(config_path).get("tie_word_embeddings", True) is not True:
        raise PresetError(f"{config_path}: field tie_word_embeddings=false: the project's masked-LM head is tied "
                          "to the token embeddings; load the encoder without masked_lm.")  # fmt: skip
    if decoder in entries and not np.array_equal(
        safetensors_file.read_tensor(entries[decoder]), token_embeddings
    ):
        raise PresetError(f"{entries[decoder].path}: tensor {decoder!r} differs from the word embeddings; the "
                          "project's masked-LM head is tied to them.")  # fmt: skip

    def tensor(name):
        return safetensors_file.read_tensor(info.tensors[name])

    return {
        "masked_lm_head/transform_kernel": tensor(dense_weight).T,
        "masked_lm_head/transform_bias": tensor(dense_bias),
        "masked_lm_head/transform_norm/gamma": tensor(norm_gamma),
        "masked_lm_head/transform_norm/beta": tensor(norm_beta),
        "masked_lm_head/output_bias": tensor(bias),
    }


__all__ = [
    "HF_ACTIVATIONS",
    "HF_FIELDS",
    "HF_IGNORED_FIELDS",
    "hugging_face_weights",
    "read_hugging_face_directory",
]
