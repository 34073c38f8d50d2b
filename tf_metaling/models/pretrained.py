"""Pretrained encoders: keras-hub presets and Hugging Face directories converted into `MultilingualEncoder`.

Two directory formats are read, both offline:

- a keras-hub preset (``save_to_preset``: ``config.json`` naming a
  ``BertBackbone`` or ``XLMRobertaBackbone``, ``model.weights.h5``,
  ``tokenizer.json`` and its vocabulary asset); the backbone is built by
  keras-hub and its weights copied;
- a Hugging Face directory (``config.json`` with ``model_type`` ``bert`` or
  ``xlm-roberta``, ``model.safetensors`` or a sharded
  ``model.safetensors.index.json``, and the tokenizer files); its
  ``config.json`` is read field by field and its tensors are read with numpy
  (`safetensors_file`), without keras-hub.

Every field that changes what the network computes is either honoured or
refused with an error naming the file, the field and its value, never
approximated: `HF_FIELDS` and `HF_ACTIVATIONS` say how each Hugging Face field
maps (``hidden_act``, ``layer_norm_eps``, ``position_embedding_type``,
``type_vocab_size``, XLM-R's position offset, sizes and head counts); a
keras-hub config's arguments are checked against what the backbone class
takes, and a preset may carry `ENCODER_OVERRIDES_FILE` when its keras-hub
class cannot express the function its weights were trained with (the built-in
e5 encoder: exact GELU in a ``BertBackbone``). `read_preset` checks a
directory completely (config, tokenizer files, and for safetensors every
header, tensor name, shape and dtype against the config) before anything is
built.

Weights go through one layout: ``{key: array}`` keyed like the encoder's own
variables (``"block_0/attention/qkv_kernel"``, the variable path without the
encoder's name; ``"masked_lm_head/..."`` for a masked-LM head), produced from a
keras-hub backbone (`backbone_weights`) or from safetensors tensors, and
copied by `assign_encoder_weights`. The keras-hub layers are never wrapped:
the meta step differentiates twice through the encoder, and Keras's
`LayerNormalization` has wrong second derivatives on TensorFlow.

Language-specific layers added to a converted encoder start as the identity:
adapters get a zero up-projection, and LS attention, feed-forward and layer
norms start as copies of the pretrained shared weights in every language's
row, so the converted model computes the pretrained function until trained.

The tokenizer becomes the project's in-graph tokenizer
(`load_pretrained_tokenizer`): WordPiece with BERT's pretokenisation, or
SentencePiece with fairseq ids for XLM-R's vocabulary (also inside a BERT, as
multilingual-e5). Hugging Face tokenizer settings absent from
``tokenizer_config.json`` (or the whole file) take Hugging Face's defaults.
"""

from __future__ import annotations

import os

import numpy as np
import sentencepiece

from tf_metaling.languages import as_vocabulary
from tf_metaling.layers.activations import FEED_FORWARD_ACTIVATIONS
from tf_metaling.models.checkpoint_directory import (
    CONFIG_FILE,
    FAIRSEQ_PAD_ID,
    PresetError,
    PresetInfo,
    config_field,
    read_json,
    require_file,
    wordpiece_pad_id,
)
from tf_metaling.models.hugging_face_checkpoint import (
    HF_ACTIVATIONS,
    HF_FIELDS,
    hugging_face_weights,
    read_hugging_face_directory,
)
from tf_metaling.models.multilingual_encoder import MultilingualEncoder
from tf_metaling.models.multilingual_model import MultilingualModel
from tf_metaling.models.partition import language_specific_variables, variable_key
from tf_metaling.tokenizers import SentencePieceTokenizer, Tokenizer, WordPieceTokenizer
from tf_metaling.tokenizers.wordpiece_tokenizer import read_vocab_file

# ---------------------------------------------------------------- keras-hub presets
# keras-hub registered names -> the project's name for the architecture.
BACKBONES = {"keras_hub>BertBackbone": "bert", "keras_hub>XLMRobertaBackbone": "xlm_roberta"}
# The arguments of those backbones (keras-hub 0.32); any other config field is refused.
KERAS_HUB_ARGUMENTS = {
    "bert": {"vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
             "max_sequence_length", "num_segments", "dtype", "name", "trainable"},
    "xlm_roberta": {"vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
                    "max_sequence_length", "dtype", "name", "trainable"},
}  # fmt: skip
# What the backbone classes fix in code (keras-hub 0.32): block activation and layer-norm epsilon.
BLOCK_ACTIVATION = {"bert": "gelu_approximate", "xlm_roberta": "gelu"}
BLOCK_EPSILON = {"bert": 1e-12, "xlm_roberta": 1e-5}
KERAS_HUB_SEGMENTS = 2  # BertBackbone's default num_segments
# keras-hub tokenizer registered names -> (kind, vocabulary asset).
TOKENIZERS = {
    "keras_hub>BertTokenizer": ("wordpiece", os.path.join("assets", "tokenizer", "vocabulary.txt")),
    "keras_hub>XLMRobertaTokenizer": ("sentencepiece", os.path.join("assets", "tokenizer", "vocabulary.spm")),
}
MASKED_LM_TASKS = ("keras_hub>BertMaskedLM", "keras_hub>XLMRobertaMaskedLM")
# keras-hub's MaskedLMHead of both tasks: exact GELU, epsilon 1e-5.
MASKED_LM_ACTIVATION = "gelu"
MASKED_LM_EPSILON = 1e-5
# A preset's own statement of what its keras-hub class cannot say (e.g. e5's exact GELU in a
# BertBackbone): {"activation": "<name>", "note": "..."}; honoured by the conversion.
ENCODER_OVERRIDES_FILE = "tf_metaling_encoder.json"
ENCODER_OVERRIDES = ("activation",)

WEIGHTS_FILE = "model.weights.h5"
TOKENIZER_FILE = "tokenizer.json"
TASK_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"


def _wordpiece_size(path):
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def _sentencepiece_size(path):
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(model_file=path)
    except (OSError, RuntimeError) as error:
        raise PresetError(f"{path}: not a SentencePiece model ({error}).") from None
    # fairseq ids: <pad> is inserted at 1 and <mask> appended (keras-hub's XLMRobertaTokenizer).
    return processor.GetPieceSize() + 2


def read_preset(preset_dir) -> PresetInfo:
    """Checks a checkpoint directory without building anything; raises `PresetError` naming the file."""
    directory = os.fspath(preset_dir)
    if not os.path.isdir(directory):
        raise PresetError(
            f"{directory}: not a directory; expected a keras-hub preset or Hugging Face directory."
        )
    config_path = os.path.join(directory, CONFIG_FILE)
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise PresetError(f"{config_path}: not a JSON object.")
    if "model_type" in config:
        info = read_hugging_face_directory(directory, config_path, config)
    else:
        info = _read_keras_hub_preset(directory, config_path, config)
    size = (_sentencepiece_size if info.tokenizer_kind == "sentencepiece" else _wordpiece_size)(
        info.vocabulary_file
    )
    # More rows than ids is allowed (checkpoints pad their embedding matrices); ids beyond
    # the rows would index past the matrix.
    if size > info.vocabulary_size:
        raise PresetError(
            f"{info.vocabulary_file}: the vocabulary has {size} ids but the embedding matrix has "
            f"{info.vocabulary_size} rows ({config_path}); tokenizer and backbone do not belong together."
        )
    return info


# ---------------------------------------------------------------- keras-hub: config
def _read_keras_hub_preset(directory, config_path, config) -> PresetInfo:
    name = config.get("registered_name")
    if name not in BACKBONES:
        raise PresetError(
            f"{config_path}: backbone {name or config.get('class_name')!r} is not supported; "
            f"supported: {sorted(BACKBONES)}."
        )
    architecture = BACKBONES[name]
    arguments = config.get("config")
    if not isinstance(arguments, dict):
        raise PresetError(f'{config_path}: no "config" object with the backbone\'s arguments.')
    unknown = sorted(set(arguments) - KERAS_HUB_ARGUMENTS[architecture])
    if unknown:
        raise PresetError(
            f"{config_path}: config.{unknown[0]}={arguments[unknown[0]]!r} is not an argument of {name} that "
            f"tf_metaling converts (it knows {sorted(KERAS_HUB_ARGUMENTS[architecture])}); refused rather than ignored."
        )
    where = f"{config_path} (config)"
    sizes = {
        key: config_field(where, arguments, key, int, minimum=1)
        for key in (
            "vocabulary_size",
            "num_layers",
            "num_heads",
            "hidden_dim",
            "intermediate_dim",
            "max_sequence_length",
        )
    }
    if sizes["hidden_dim"] % sizes["num_heads"]:
        raise PresetError(
            f"{config_path}: config.hidden_dim={sizes['hidden_dim']} is not divisible by "
            f"config.num_heads={sizes['num_heads']}."
        )
    dropout = float(config_field(where, arguments, "dropout", (int, float), default=0.1, minimum=0))
    segments = None
    if architecture == "bert":
        segments = config_field(where, arguments, "num_segments", int, default=KERAS_HUB_SEGMENTS, minimum=1)
    activation = BLOCK_ACTIVATION[architecture]
    overrides_path = os.path.join(directory, ENCODER_OVERRIDES_FILE)
    overrides = read_json(overrides_path, required=False)
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise PresetError(f"{overrides_path}: not a JSON object.")
        unknown = sorted(set(overrides) - set(ENCODER_OVERRIDES) - {"note"})
        if unknown:
            raise PresetError(
                f"{overrides_path}: field {unknown[0]!r} is not one of {list(ENCODER_OVERRIDES)}."
            )
        if "activation" in overrides:
            activation = overrides["activation"]
            if activation not in FEED_FORWARD_ACTIVATIONS:
                raise PresetError(
                    f"{overrides_path}: field activation={activation!r}; expected one of "
                    f"{list(FEED_FORWARD_ACTIVATIONS)}."
                )
    require_file(directory, WEIGHTS_FILE, "it holds the backbone's weights")
    tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
    tokenizer_config = read_json(tokenizer_path)
    tokenizer_name = tokenizer_config.get("registered_name") if isinstance(tokenizer_config, dict) else None
    if tokenizer_name not in TOKENIZERS:
        raise PresetError(
            f"{tokenizer_path}: tokenizer {tokenizer_name!r} is not supported; supported: {sorted(TOKENIZERS)}."
        )
    kind, asset = TOKENIZERS[tokenizer_name]
    vocabulary_file = require_file(directory, asset, f"{tokenizer_name} reads its vocabulary from it")
    has_masked_lm = False
    task_path = os.path.join(directory, TASK_FILE)
    if os.path.exists(task_path):
        has_masked_lm = read_json(task_path).get("registered_name") in MASKED_LM_TASKS
        if has_masked_lm:
            require_file(directory, TASK_WEIGHTS_FILE, f"{TASK_FILE} names a masked-LM task")
    # keras-hub's XLMRobertaTokenizer pads with <pad>=1, its BertTokenizer with [PAD].
    pad_token_id = FAIRSEQ_PAD_ID if kind == "sentencepiece" else wordpiece_pad_id(vocabulary_file)
    encoder_config = {
        "vocabulary_size": sizes["vocabulary_size"],
        "hidden_dim": sizes["hidden_dim"],
        "num_layers": sizes["num_layers"],
        "num_heads": sizes["num_heads"],
        "intermediate_dim": sizes["intermediate_dim"],
        "max_sequence_length": sizes["max_sequence_length"],
        "dropout": dropout,
        "attention_dropout": dropout,
        "activation": activation,
        "normalize_first": False,
        "language_embedding": False,
        "layer_norm_epsilon": BLOCK_EPSILON[architecture],
        "num_segments": segments,
        "pad_token_id": pad_token_id,
    }
    return PresetInfo(directory, "keras_hub", architecture, kind, vocabulary_file, sizes["vocabulary_size"],
                      has_masked_lm, encoder_config, MASKED_LM_ACTIVATION, MASKED_LM_EPSILON)  # fmt: skip


# ---------------------------------------------------------------- weights
def _embedding_layers(backbone, architecture):
    """The token, position and (BERT) segment embedding variables of a keras-hub backbone."""
    if architecture == "bert":
        return (
            backbone.get_layer("token_embedding").embeddings,
            backbone.get_layer("position_embedding").position_embeddings,
            backbone.get_layer("segment_embedding").embeddings,
        )
    embeddings = backbone.get_layer("embeddings")
    return embeddings.token_embedding.embeddings, embeddings.position_embedding.position_embeddings, None


def backbone_weights(backbone) -> dict:
    """``{encoder variable key: array}`` from a keras-hub `BertBackbone` / `XLMRobertaBackbone`."""
    architecture = _architecture(backbone)
    hidden = int(backbone.hidden_dim)
    tokens, positions, segments = _embedding_layers(backbone, architecture)
    norm = backbone.get_layer("embeddings_layer_norm")
    weights = {
        "embedding/token_embeddings": tokens.numpy(),
        "embedding/position_embeddings": positions.numpy(),
        "embedding/embedding_norm/gamma": norm.gamma.numpy(),
        "embedding/embedding_norm/beta": norm.beta.numpy(),
    }
    if segments is not None:
        weights["embedding/segment_embeddings"] = segments.numpy()
    for index in range(backbone.num_layers):
        source = backbone.get_layer(f"transformer_layer_{index}")
        attention = source._self_attention_layer
        projections = (attention.query_dense, attention.key_dense, attention.value_dense)
        block = f"block_{index}"
        # [d, heads, head_dim] -> [d, d]: column h * head_dim + j, as the project's attention splits heads.
        weights[f"{block}/attention/qkv_kernel"] = np.concatenate(
            [p.kernel.numpy().reshape(hidden, hidden) for p in projections], axis=1
        )
        weights[f"{block}/attention/qkv_bias"] = np.concatenate(
            [p.bias.numpy().reshape(hidden) for p in projections]
        )
        weights[f"{block}/attention/output_kernel"] = attention.output_dense.kernel.numpy().reshape(
            hidden, hidden
        )
        weights[f"{block}/attention/output_bias"] = attention.output_dense.bias.numpy()
        for target, norm_source in (("attention_norm", source._self_attention_layer_norm),
                                    ("feed_forward_norm", source._feedforward_layer_norm)):  # fmt: skip
            weights[f"{block}/{target}/gamma"] = norm_source.gamma.numpy()
            weights[f"{block}/{target}/beta"] = norm_source.beta.numpy()
        for target, dense in (("intermediate", source._feedforward_intermediate_dense),
                              ("output", source._feedforward_output_dense)):  # fmt: skip
            weights[f"{block}/feed_forward/{target}_kernel"] = dense.kernel.numpy()
            weights[f"{block}/feed_forward/{target}_bias"] = dense.bias.numpy()
    return weights


def _masked_lm_task_weights(head) -> dict:
    """``{"masked_lm_head/...": array}`` from a keras-hub `MaskedLMHead`."""
    return {
        "masked_lm_head/transform_kernel": head._intermediate_dense.kernel.numpy(),
        "masked_lm_head/transform_bias": head._intermediate_dense.bias.numpy(),
        "masked_lm_head/transform_norm/gamma": head._intermediate_layer_norm.gamma.numpy(),
        "masked_lm_head/transform_norm/beta": head._intermediate_layer_norm.beta.numpy(),
        "masked_lm_head/output_bias": head._bias.numpy(),
    }


def read_pretrained_weights(info: PresetInfo, masked_lm: bool = False) -> dict:
    """``{encoder variable key: array}`` of a checked directory (plus ``masked_lm_head/...`` when asked and present).

    A Hugging Face directory's tensors are read with numpy; a keras-hub
    preset's backbone (or masked-LM task) is built by keras-hub and read.
    """
    if info.format == "transformers":
        return hugging_face_weights(info, masked_lm)
    import keras_hub

    if masked_lm and info.has_masked_lm:
        task = keras_hub.models.MaskedLM.from_preset(info.directory, preprocessor=None)
        return {**backbone_weights(task.backbone), **_masked_lm_task_weights(task.get_layer("mlm_head"))}
    return backbone_weights(keras_hub.models.Backbone.from_preset(info.directory))


def assign_encoder_weights(encoder: MultilingualEncoder, weights: dict) -> MultilingualEncoder:
    """Copies pretrained ``{key: array}`` (`read_pretrained_weights`, `backbone_weights`) into `encoder`.

    Every encoder variable gets its value: shared ones as they are, language-
    specific ones in every language's row. Adapters start as the identity
    (zero up-projection; the down-projection keeps its random initialisation,
    so the up-projection's first gradient is not zero). Positions are cut to
    the encoder's `max_sequence_length`. Nothing is assigned unless every
    shape fits; ``masked_lm_head/...`` entries are ignored here.
    """
    routed = {id(variable) for variable in language_specific_variables(encoder)}
    plan = []
    unused = {key for key in weights if not key.startswith("masked_lm_head/")}
    for variable in encoder.weights:
        key = variable_key(variable)
        parts = key.split("/")
        if len(parts) > 1 and parts[1] in ("adapter_attention", "adapter_ffn"):
            if parts[-1] in ("up_kernel", "up_bias"):
                plan.append((variable, np.zeros(variable.shape, variable.dtype)))
            continue
        if key not in weights:
            raise PresetError(
                f"{encoder.name}: no pretrained value for {key}; the checkpoint does not fit this encoder."
            )
        unused.discard(key)
        value = np.asarray(weights[key])
        if key == "embedding/position_embeddings":
            if encoder.max_sequence_length > value.shape[0]:
                raise PresetError(
                    f"{encoder.name}: max_sequence_length={encoder.max_sequence_length} but the checkpoint has "
                    f"{value.shape[0]} positions."
                )
            value = value[: encoder.max_sequence_length]
        shape = tuple(variable.shape[1:]) if id(variable) in routed else tuple(variable.shape)
        if value.shape != shape:
            raise PresetError(
                f"{encoder.name}: {key} has shape {shape}; the checkpoint's value has {value.shape}."
            )
        if id(variable) in routed:
            value = np.broadcast_to(value, tuple(variable.shape))
        plan.append((variable, value.astype(variable.dtype)))
    if unused:
        raise PresetError(f"{encoder.name}: the checkpoint's {sorted(unused)} have no place in this encoder.")
    for variable, value in plan:
        variable.assign(value)
    return encoder


# ---------------------------------------------------------------- keras-hub objects
def load_backbone(preset_dir):
    """The keras-hub backbone of a checked preset directory (offline)."""
    import keras_hub

    read_preset(preset_dir)
    return keras_hub.models.Backbone.from_preset(os.fspath(preset_dir))


def load_keras_hub_tokenizer(preset_dir):
    """The keras-hub tokenizer with the directory's vocabulary and settings (the reference the project's matches).

    For a Hugging Face directory it is built here with the settings
    `read_preset` resolved (Hugging Face's defaults for absent fields).
    """
    import keras_hub

    info = read_preset(preset_dir)
    if info.format == "keras_hub":
        return keras_hub.tokenizers.Tokenizer.from_preset(os.fspath(preset_dir))
    if info.tokenizer_kind == "sentencepiece":
        return keras_hub.models.XLMRobertaTokenizer(proto=info.vocabulary_file)
    options = info.tokenizer_options
    special = options["special_tokens"]
    if special != {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}:
        raise PresetError(
            f"{info.directory}: special tokens {special}; keras-hub's BertTokenizer has BERT's own."
        )
    return keras_hub.models.BertTokenizer(vocabulary=info.vocabulary_file, lowercase=options["lower_case"],
                                          strip_accents=options["strip_accents"])  # fmt: skip


def load_pretrained_tokenizer(preset_dir) -> Tokenizer:
    """The project's in-graph tokenizer with the directory's vocabulary and special tokens.

    WordPiece vocabularies give a `WordPieceTokenizer` with BERT's
    pretokenisation; SentencePiece ones give a `SentencePieceTokenizer` with
    fairseq ids. Both produce the ids the checkpoint's own tokenizer does.
    """
    info = read_preset(preset_dir)
    if info.tokenizer_kind == "sentencepiece":
        return SentencePieceTokenizer.load(info.vocabulary_file)
    if info.format == "keras_hub":
        reference = load_keras_hub_tokenizer(preset_dir)
        return WordPieceTokenizer.from_keras_hub(reference, vocab_file=info.vocabulary_file)
    options = info.tokenizer_options
    return WordPieceTokenizer(
        read_vocab_file(info.vocabulary_file, special_tokens=options["special_tokens"]),
        lower_case=options["lower_case"],
        normalization_form=None,
        vocab_file=info.vocabulary_file,
        special_tokens=options["special_tokens"],
        pretokenization="bert",
        strip_accents=options["strip_accents"],
    )


def _architecture(backbone) -> str:
    import keras_hub

    # XLMRobertaBackbone subclasses RobertaBackbone; check the exact classes.
    if type(backbone) is keras_hub.models.BertBackbone:
        return "bert"
    if type(backbone) is keras_hub.models.XLMRobertaBackbone:
        return "xlm_roberta"
    raise PresetError(
        f"backbone {type(backbone).__name__} is not supported; supported: BertBackbone, XLMRobertaBackbone."
    )


def encoder_config_from_backbone(backbone, pad_token_id: int = 0) -> dict:
    """The `MultilingualEncoder` arguments that reproduce a keras-hub `backbone`'s shapes and computation."""
    architecture = _architecture(backbone)
    blocks = [backbone.get_layer(f"transformer_layer_{i}") for i in range(backbone.num_layers)]
    embedding_norm = backbone.get_layer("embeddings_layer_norm")
    epsilons = {float(embedding_norm.epsilon)} | {float(block.layer_norm_epsilon) for block in blocks}
    if len(epsilons) != 1:
        raise PresetError(f"{backbone.name}: layer norms use different epsilons {sorted(epsilons)}.")
    if any(block.normalize_first for block in blocks):
        raise PresetError(f"{backbone.name}: pre-LN blocks are not BERT/XLM-R; not supported.")
    _, positions, segments = _embedding_layers(backbone, architecture)
    return {
        "vocabulary_size": int(backbone.vocabulary_size),
        "hidden_dim": int(backbone.hidden_dim),
        "num_layers": int(backbone.num_layers),
        "num_heads": int(backbone.num_heads),
        "intermediate_dim": int(backbone.intermediate_dim),
        "max_sequence_length": int(positions.shape[0]),
        "dropout": float(backbone.dropout),
        "attention_dropout": float(backbone.dropout),
        "activation": BLOCK_ACTIVATION[architecture],
        "normalize_first": False,
        "language_embedding": False,
        "layer_norm_epsilon": epsilons.pop(),
        "num_segments": None if segments is None else int(segments.shape[0]),
        "pad_token_id": int(pad_token_id),
    }


# ---------------------------------------------------------------- converted encoders and models
# Arguments a checkpoint does not fix (the rest of `encoder_config` is its function).
FREE_ENCODER_OPTIONS = ("dropout", "attention_dropout", "max_sequence_length", "initializer_range")


def _encoder(config: dict, languages, encoder_options: dict) -> MultilingualEncoder:
    fixed = set(config) - set(FREE_ENCODER_OPTIONS)
    clashes = sorted(fixed & set(encoder_options))
    if clashes:
        raise ValueError(f"{clashes} are fixed by the checkpoint and cannot be overridden.")
    config = {**config, **encoder_options}
    config.setdefault("adapter_dim", 64)
    return MultilingualEncoder(languages=as_vocabulary(languages), **config)


def convert_backbone(backbone, languages, pad_token_id: int = 0, **encoder_options) -> MultilingualEncoder:
    """A `MultilingualEncoder` with a keras-hub `backbone`'s shapes, computation and weights.

    Args:
        backbone: a keras-hub `BertBackbone` or `XLMRobertaBackbone`.
        languages: the language codes (or a `LanguageVocabulary`) of the LS layers.
        pad_token_id: the tokenizer's padding id (masks default to ids != it).
        **encoder_options: `MultilingualEncoder` arguments that the backbone
            does not fix: ``language_specific``, ``language_specific_layers``,
            ``adapter_dim``, ``adapter_activation``, ``dropout``,
            ``attention_dropout``, ``max_sequence_length`` (<= the backbone's),
            ``dtype``, ``name``.
    """
    encoder = _encoder(encoder_config_from_backbone(backbone, pad_token_id), languages, encoder_options)
    return assign_encoder_weights(encoder, backbone_weights(backbone))


def load_pretrained_encoder(preset_dir, languages, **encoder_options) -> MultilingualEncoder:
    """Reads a checkpoint directory and returns the converted `MultilingualEncoder`.

    The directory is checked completely (`read_preset`) and its weights read
    before the encoder is built; `encoder_options` as in `convert_backbone`.
    """
    info = read_preset(preset_dir)
    weights = read_pretrained_weights(info)
    return assign_encoder_weights(_encoder(info.encoder_config, languages, encoder_options), weights)


def load_pretrained_model(
    preset_dir,
    languages,
    *,
    masked_lm=False,
    token_class_names=None,
    sentence_class_names=None,
    pooling="mean",
    head_dropout=0.1,
    **encoder_options,
) -> MultilingualModel:
    """A `MultilingualModel` on the converted encoder, with the task heads asked for.

    With ``masked_lm=True`` the model has the tied masked-LM head; when the
    directory holds one (a keras-hub masked-LM task, or a Hugging Face
    ``BertForMaskedLM`` / ``XLMRobertaForMaskedLM``) its transform, layer norm
    and output bias are loaded, otherwise the head starts fresh.
    Classification heads always start fresh.
    """
    info = read_preset(preset_dir)
    weights = read_pretrained_weights(info, masked_lm=masked_lm)
    encoder = assign_encoder_weights(_encoder(info.encoder_config, languages, encoder_options), weights)
    model = MultilingualModel(
        encoder,
        masked_lm=masked_lm,
        token_class_names=token_class_names,
        sentence_class_names=sentence_class_names,
        pooling=pooling,
        head_dropout=head_dropout,
        masked_lm_activation=info.masked_lm_activation if masked_lm else None,
        masked_lm_layer_norm_epsilon=info.masked_lm_layer_norm_epsilon
        if masked_lm and info.has_masked_lm
        else None,
    )
    if masked_lm and info.has_masked_lm:
        head = model.masked_lm_head
        for variable in head.weights:
            key = "masked_lm_head/" + variable.path.split("/", 1)[1]
            variable.assign(np.asarray(weights[key], dtype=variable.dtype))
    return model


__all__ = [
    "ENCODER_OVERRIDES_FILE",
    "HF_ACTIVATIONS",
    "HF_FIELDS",
    "PresetError",
    "PresetInfo",
    "assign_encoder_weights",
    "backbone_weights",
    "convert_backbone",
    "encoder_config_from_backbone",
    "load_backbone",
    "load_keras_hub_tokenizer",
    "load_pretrained_encoder",
    "load_pretrained_model",
    "load_pretrained_tokenizer",
    "read_preset",
    "read_pretrained_weights",
]
