"""Pretrained encoders: keras-hub BERT / XLM-RoBERTa presets converted into `MultilingualEncoder`.

A preset directory (keras-hub's `save_to_preset` layout, or a local Hugging
Face directory that keras-hub converts offline) is read with
``keras_hub.models.Backbone.from_preset(DIR)``; its weights are copied into a
`MultilingualEncoder` of the same shapes: token, position and segment
embeddings, the embedding layer norm, and every block's attention, feed-forward
and (post-LN) layer norms in order. The keras-hub layers are not wrapped: the
meta step differentiates twice through the encoder, and Keras's
`LayerNormalization` has wrong second derivatives on TensorFlow, so the
converted model runs entirely on the project's own layers.

Language-specific layers added to a converted encoder start as the identity:
adapters get a zero up-projection, and LS attention, feed-forward and layer
norms start as copies of the pretrained shared weights in every language's row,
so the converted model computes the pretrained function until it is trained.

The preset's tokenizer becomes the project's in-graph tokenizer
(`load_pretrained_tokenizer`): WordPiece for BERT's, SentencePiece with
fairseq ids for XLM-R's. The tokenizer class is read from the preset, not
inferred from the backbone, so a BERT backbone with an XLM-R vocabulary
(multilingual-e5) works, and the encoder's padding id is the tokenizer's.

Every problem with a directory (unsupported architecture, missing file,
vocabulary with more ids than the embedding matrix has rows) is reported by
`read_preset` before anything is built, naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import sentencepiece

# keras_hub is imported inside the functions that use it: it takes about 2 s to import.
from tf_metaling.languages import as_vocabulary
from tf_metaling.models.multilingual_encoder import MultilingualEncoder
from tf_metaling.models.multilingual_model import MultilingualModel
from tf_metaling.models.partition import partition_variables
from tf_metaling.tokenizers import SentencePieceTokenizer, Tokenizer, WordPieceTokenizer

# keras-hub registered names -> the project's name for the architecture.
BACKBONES = {"keras_hub>BertBackbone": "bert", "keras_hub>XLMRobertaBackbone": "xlm_roberta"}
# Hugging Face `model_type` values keras-hub converts to those backbones.
HF_MODEL_TYPES = {"bert": "bert", "xlm-roberta": "xlm_roberta"}
# keras-hub tokenizer registered names -> (kind, vocabulary asset).
TOKENIZERS = {
    "keras_hub>BertTokenizer": ("wordpiece", os.path.join("assets", "tokenizer", "vocabulary.txt")),
    "keras_hub>XLMRobertaTokenizer": ("sentencepiece", os.path.join("assets", "tokenizer", "vocabulary.spm")),
}
MASKED_LM_TASKS = ("keras_hub>BertMaskedLM", "keras_hub>XLMRobertaMaskedLM")
# Activations of the backbones' blocks and of their masked-LM heads (keras-hub 0.32).
BLOCK_ACTIVATION = {"bert": "gelu_approximate", "xlm_roberta": "gelu"}
MASKED_LM_ACTIVATION = "gelu"

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
TOKENIZER_FILE = "tokenizer.json"
TASK_FILE = "task.json"
TASK_WEIGHTS_FILE = "task.weights.h5"
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
HF_WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
HF_WORDPIECE_FILE = "vocab.txt"
HF_SENTENCEPIECE_FILE = "sentencepiece.bpe.model"


class PresetError(ValueError):
    """A preset directory that cannot be converted; the message names the file."""


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What `read_preset` found in a preset directory.

    Attributes:
        directory: the preset directory.
        format: ``"keras_hub"`` or ``"transformers"`` (a Hugging Face directory).
        architecture: ``"bert"`` or ``"xlm_roberta"``.
        tokenizer_kind: ``"wordpiece"`` or ``"sentencepiece"``.
        vocabulary_file: the tokenizer's vocabulary file.
        vocabulary_size: the backbone's embedding rows (>= the tokenizer's ids).
        has_masked_lm: the preset holds a masked-LM task (keras-hub format only).
    """

    directory: str
    format: str
    architecture: str
    tokenizer_kind: str
    vocabulary_file: str
    vocabulary_size: int
    has_masked_lm: bool


def _read_json(path):
    if not os.path.isfile(path):
        raise PresetError(f"{path}: missing; a preset directory needs it.")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PresetError(f"{path}: not readable JSON ({error}).") from None


def _require_file(directory, name, why):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise PresetError(f"{path}: missing; {why}.")
    return path


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
    """Checks a preset directory without building anything; raises `PresetError` naming the file."""
    directory = os.fspath(preset_dir)
    if not os.path.isdir(directory):
        raise PresetError(f"{directory}: not a directory; expected a keras-hub preset directory.")
    config_path = os.path.join(directory, CONFIG_FILE)
    config = _read_json(config_path)
    if "model_type" in config:
        return _read_transformers_preset(directory, config_path, config)
    name = config.get("registered_name")
    if name not in BACKBONES:
        raise PresetError(
            f"{config_path}: backbone {name or config.get('class_name')!r} is not supported; "
            f"supported: {sorted(BACKBONES)}."
        )
    architecture = BACKBONES[name]
    try:
        vocabulary_size = int(config["config"]["vocabulary_size"])
    except (KeyError, TypeError, ValueError):
        raise PresetError(f"{config_path}: no config.vocabulary_size.") from None
    _require_file(directory, WEIGHTS_FILE, "it holds the backbone's weights")
    tokenizer_path = os.path.join(directory, TOKENIZER_FILE)
    tokenizer_config = _read_json(tokenizer_path)
    tokenizer_name = tokenizer_config.get("registered_name")
    if tokenizer_name not in TOKENIZERS:
        raise PresetError(
            f"{tokenizer_path}: tokenizer {tokenizer_name!r} is not supported; supported: {sorted(TOKENIZERS)}."
        )
    kind, asset = TOKENIZERS[tokenizer_name]
    vocabulary_file = _require_file(directory, asset, f"{tokenizer_name} reads its vocabulary from it")
    has_masked_lm = False
    task_path = os.path.join(directory, TASK_FILE)
    if os.path.exists(task_path):
        has_masked_lm = _read_json(task_path).get("registered_name") in MASKED_LM_TASKS
        if has_masked_lm:
            _require_file(directory, TASK_WEIGHTS_FILE, f"{TASK_FILE} names a masked-LM task")
    return _checked(PresetInfo(directory, "keras_hub", architecture, kind, vocabulary_file,
                               vocabulary_size, has_masked_lm), config_path)


def _read_transformers_preset(directory, config_path, config):
    model_type = config["model_type"]
    if model_type not in HF_MODEL_TYPES:
        raise PresetError(
            f"{config_path}: model_type {model_type!r} is not supported; supported: {sorted(HF_MODEL_TYPES)}."
        )
    if not any(os.path.isfile(os.path.join(directory, name)) for name in HF_WEIGHTS_FILES):
        raise PresetError(
            f"{os.path.join(directory, HF_WEIGHTS_FILES[0])}: missing; a Hugging Face directory needs "
            "its weights as safetensors."
        )
    tokenizer_config = _read_json(os.path.join(directory, HF_TOKENIZER_CONFIG_FILE))
    sentencepiece = model_type == "xlm-roberta" or "XLMRoberta" in tokenizer_config.get("tokenizer_class", "")
    vocabulary_file = _require_file(
        directory,
        HF_SENTENCEPIECE_FILE if sentencepiece else HF_WORDPIECE_FILE,
        "the tokenizer reads its vocabulary from it",
    )
    try:
        vocabulary_size = int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        raise PresetError(f"{config_path}: no vocab_size.") from None
    info = PresetInfo(directory, "transformers", HF_MODEL_TYPES[model_type],
                      "sentencepiece" if sentencepiece else "wordpiece", vocabulary_file, vocabulary_size, False)
    return _checked(info, config_path)


def _checked(info: PresetInfo, config_path) -> PresetInfo:
    size = (_sentencepiece_size if info.tokenizer_kind == "sentencepiece" else _wordpiece_size)(info.vocabulary_file)
    # More rows than ids is allowed (checkpoints pad their embedding matrices); ids beyond
    # the rows would index past the matrix.
    if size > info.vocabulary_size:
        raise PresetError(
            f"{info.vocabulary_file}: the vocabulary has {size} ids but the embedding matrix has "
            f"{info.vocabulary_size} rows ({config_path}); tokenizer and backbone do not belong together."
        )
    return info


def load_backbone(preset_dir):
    """The keras-hub backbone of a checked preset directory (offline)."""
    import keras_hub

    read_preset(preset_dir)
    return keras_hub.models.Backbone.from_preset(os.fspath(preset_dir))


def load_keras_hub_tokenizer(preset_dir):
    """The preset's own keras-hub tokenizer (the reference the project's tokenizer matches)."""
    import keras_hub

    read_preset(preset_dir)
    return keras_hub.tokenizers.Tokenizer.from_preset(os.fspath(preset_dir))


def load_pretrained_tokenizer(preset_dir) -> Tokenizer:
    """The project's in-graph tokenizer with the preset's vocabulary and special tokens.

    WordPiece presets give a `WordPieceTokenizer` with keras-hub's BERT
    pretokenisation; SentencePiece presets give a `SentencePieceTokenizer`
    with fairseq ids. Both produce the ids the preset's keras-hub tokenizer does.
    """
    info = read_preset(preset_dir)
    if info.tokenizer_kind == "sentencepiece":
        return SentencePieceTokenizer.load(info.vocabulary_file)
    reference = load_keras_hub_tokenizer(preset_dir)
    return WordPieceTokenizer.from_keras_hub(reference, vocab_file=info.vocabulary_file)


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


def _embedding_layers(backbone, architecture):
    if architecture == "bert":
        return (
            backbone.get_layer("token_embedding").embeddings,
            backbone.get_layer("position_embedding").position_embeddings,
            backbone.get_layer("segment_embedding").embeddings,
        )
    embeddings = backbone.get_layer("embeddings")
    return embeddings.token_embedding.embeddings, embeddings.position_embedding.position_embeddings, None


def encoder_config_from_backbone(backbone, pad_token_id: int = 0) -> dict:
    """The `MultilingualEncoder` arguments that reproduce `backbone`'s shapes and computation."""
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


def _assign(variable, value, routed: set):
    """Assigns `value` to a shared variable, or to every language's row of a routed one."""
    value = np.asarray(value, dtype=variable.dtype)
    if id(variable) in routed:
        value = np.broadcast_to(value, tuple(variable.shape))
    if tuple(value.shape) != tuple(variable.shape):
        raise PresetError(f"{variable.path}: shape {tuple(variable.shape)} cannot take {value.shape}.")
    variable.assign(value)


def assign_backbone_weights(encoder: MultilingualEncoder, backbone) -> MultilingualEncoder:
    """Copies `backbone`'s weights into `encoder` (built by `encoder_config_from_backbone`).

    LS layers start as the identity: LS attention, feed-forward and layer norms
    get the pretrained weights in every language's row; adapters get a zero
    up-projection (their down-projection keeps its random initialisation, so
    the up-projection's first gradient is not zero).
    """
    architecture = _architecture(backbone)
    expected = encoder_config_from_backbone(backbone, encoder.pad_token_id)
    for key in ("vocabulary_size", "hidden_dim", "num_layers", "num_heads", "intermediate_dim", "num_segments"):
        if getattr(encoder, key) != expected[key]:
            raise PresetError(f"{backbone.name}: {key}={expected[key]} but the encoder has {getattr(encoder, key)}.")
    if encoder.max_sequence_length > expected["max_sequence_length"]:
        raise PresetError(
            f"{backbone.name}: max_sequence_length={expected['max_sequence_length']} but the encoder "
            f"has {encoder.max_sequence_length}."
        )
    routed = {id(variable) for variable in partition_variables(encoder).language}
    tokens, positions, segments = _embedding_layers(backbone, architecture)
    embedding = encoder.embedding
    _assign(embedding.token_embeddings, tokens.numpy(), routed)
    _assign(embedding.position_embeddings, positions.numpy()[: encoder.max_sequence_length], routed)
    if segments is not None:
        _assign(embedding.segment_embeddings, segments.numpy(), routed)
    norm = backbone.get_layer("embeddings_layer_norm")
    _assign(embedding.norm.gamma, norm.gamma.numpy(), routed)
    _assign(embedding.norm.beta, norm.beta.numpy(), routed)
    hidden = encoder.hidden_dim
    for index, block in enumerate(encoder.blocks):
        source = backbone.get_layer(f"transformer_layer_{index}")
        attention = source._self_attention_layer

        def flat_kernel(dense):  # [d, heads, head_dim] -> [d, d], column h * head_dim + j
            return dense.kernel.numpy().reshape(hidden, hidden)

        def flat_bias(dense):
            return dense.bias.numpy().reshape(hidden)

        projections = (attention.query_dense, attention.key_dense, attention.value_dense)
        _assign(block.attention.qkv_kernel, np.concatenate([flat_kernel(d) for d in projections], axis=1), routed)
        _assign(block.attention.qkv_bias, np.concatenate([flat_bias(d) for d in projections]), routed)
        _assign(block.attention.output_kernel, attention.output_dense.kernel.numpy().reshape(hidden, hidden), routed)
        _assign(block.attention.output_bias, attention.output_dense.bias.numpy(), routed)
        for norm_target, norm_source in (
            (block.attention_norm, source._self_attention_layer_norm),
            (block.feed_forward_norm, source._feedforward_layer_norm),
        ):
            _assign(norm_target.gamma, norm_source.gamma.numpy(), routed)
            _assign(norm_target.beta, norm_source.beta.numpy(), routed)
        ffn = block.feed_forward
        _assign(ffn.intermediate_kernel, source._feedforward_intermediate_dense.kernel.numpy(), routed)
        _assign(ffn.intermediate_bias, source._feedforward_intermediate_dense.bias.numpy(), routed)
        _assign(ffn.output_kernel, source._feedforward_output_dense.kernel.numpy(), routed)
        _assign(ffn.output_bias, source._feedforward_output_dense.bias.numpy(), routed)
        for adapter in (block.attention_adapter, block.feed_forward_adapter):
            if adapter is not None:
                adapter.up_kernel.assign(np.zeros(adapter.up_kernel.shape, adapter.up_kernel.dtype))
                adapter.up_bias.assign(np.zeros(adapter.up_bias.shape, adapter.up_bias.dtype))
    return encoder


def convert_backbone(backbone, languages, pad_token_id: int = 0, **encoder_options) -> MultilingualEncoder:
    """A `MultilingualEncoder` with `backbone`'s shapes and weights.

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
    config = encoder_config_from_backbone(backbone, pad_token_id)
    fixed = set(config) - {"dropout", "attention_dropout", "max_sequence_length"}
    clashes = sorted(fixed & set(encoder_options))
    if clashes:
        raise ValueError(f"convert_backbone: {clashes} are fixed by the backbone and cannot be overridden.")
    config.update(encoder_options)
    config.setdefault("adapter_dim", 64)
    encoder = MultilingualEncoder(languages=as_vocabulary(languages), **config)
    return assign_backbone_weights(encoder, backbone)


def _pad_token_id(info: PresetInfo) -> int:
    # fairseq ids pad with 1; BERT vocabularies put [PAD] wherever the file does.
    if info.tokenizer_kind == "sentencepiece":
        return 1
    with open(info.vocabulary_file, encoding="utf-8") as file:
        for index, line in enumerate(file):
            if line.rstrip("\r\n") == "[PAD]":
                return index
    raise PresetError(f"{info.vocabulary_file}: no [PAD] token.")


def load_pretrained_encoder(preset_dir, languages, **encoder_options) -> MultilingualEncoder:
    """Reads a preset directory and returns the converted `MultilingualEncoder` (see `convert_backbone`)."""
    info = read_preset(preset_dir)
    return convert_backbone(load_backbone(info.directory), languages, _pad_token_id(info), **encoder_options)


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
    preset holds a keras-hub masked-LM task its head's weights (transform,
    layer norm, output bias) are loaded, otherwise the head starts fresh.
    Classification heads always start fresh.
    """
    import keras_hub

    info = read_preset(preset_dir)
    pad_token_id = _pad_token_id(info)
    masked_lm_weights = None
    if masked_lm and info.has_masked_lm:
        task = keras_hub.models.MaskedLM.from_preset(info.directory, preprocessor=None)
        backbone = task.backbone
        masked_lm_weights = task.get_layer("mlm_head")
    else:
        backbone = load_backbone(info.directory)
    encoder = convert_backbone(backbone, languages, pad_token_id, **encoder_options)
    model = MultilingualModel(
        encoder,
        masked_lm=masked_lm,
        token_class_names=token_class_names,
        sentence_class_names=sentence_class_names,
        pooling=pooling,
        head_dropout=head_dropout,
        masked_lm_activation=MASKED_LM_ACTIVATION if masked_lm else None,
        masked_lm_layer_norm_epsilon=(
            float(masked_lm_weights._intermediate_layer_norm.epsilon) if masked_lm_weights is not None else None
        ),
    )
    if masked_lm_weights is not None:
        head = model.masked_lm_head
        head.transform_kernel.assign(masked_lm_weights._intermediate_dense.kernel.numpy())
        head.transform_bias.assign(masked_lm_weights._intermediate_dense.bias.numpy())
        head.norm.gamma.assign(masked_lm_weights._intermediate_layer_norm.gamma.numpy())
        head.norm.beta.assign(masked_lm_weights._intermediate_layer_norm.beta.numpy())
        head.output_bias.assign(masked_lm_weights._bias.numpy())
    return model


__all__ = [
    "PresetError",
    "PresetInfo",
    "assign_backbone_weights",
    "convert_backbone",
    "encoder_config_from_backbone",
    "load_backbone",
    "load_keras_hub_tokenizer",
    "load_pretrained_encoder",
    "load_pretrained_model",
    "load_pretrained_tokenizer",
    "read_preset",
]
