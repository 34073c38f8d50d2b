"""What a pretrained checkpoint directory holds (`PresetInfo`), its error (`PresetError`), and reading helpers.

Shared by the readers of the two directory formats: keras-hub presets
(`tf_metaling.models.pretrained`) and Hugging Face directories
(`tf_metaling.models.hugging_face_checkpoint`). Every helper raises
`PresetError` with a message that starts with the file it is about.
"""

from __future__ import annotations

import dataclasses
import json
import os

CONFIG_FILE = "config.json"
FAIRSEQ_PAD_ID = 1  # XLM-R's SentencePiece vocabulary in fairseq ids: <s>=0, <pad>=1, </s>=2, <unk>=3


class PresetError(ValueError):
    """A checkpoint directory that cannot be converted; the message names the file (and field or tensor)."""


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What `read_preset` found in a checkpoint directory, checked.

    Attributes:
        directory: the directory.
        format: ``"keras_hub"`` or ``"transformers"`` (a Hugging Face directory).
        architecture: ``"bert"`` or ``"xlm_roberta"``.
        tokenizer_kind: ``"wordpiece"`` or ``"sentencepiece"``.
        vocabulary_file: the tokenizer's vocabulary file.
        vocabulary_size: the embedding rows (>= the tokenizer's ids).
        has_masked_lm: the directory holds a masked-LM head.
        encoder_config: the `MultilingualEncoder` arguments the checkpoint fixes
            (sizes, activation, layer-norm epsilon, segments, padding id, dropout).
        masked_lm_activation, masked_lm_layer_norm_epsilon: the masked-LM head's transform.
        tokenizer_options: WordPiece settings of a Hugging Face directory
            (``lower_case``, ``strip_accents``, ``special_tokens``); empty otherwise.
        tensors: a Hugging Face directory's expected tensors (name ->
            `safetensors_file.TensorEntry`), already checked.
        tensor_prefix, layer_norm_names: how those tensors are named (``"bert."``;
            ``("weight", "bias")`` or ``("gamma", "beta")``).
    """

    directory: str
    format: str
    architecture: str
    tokenizer_kind: str
    vocabulary_file: str
    vocabulary_size: int
    has_masked_lm: bool
    encoder_config: dict
    masked_lm_activation: str
    masked_lm_layer_norm_epsilon: float
    tokenizer_options: dict = dataclasses.field(default_factory=dict)
    tensors: dict = dataclasses.field(default_factory=dict, repr=False)
    tensor_prefix: str = ""
    layer_norm_names: tuple = ("weight", "bias")

    @property
    def pad_token_id(self) -> int:
        return self.encoder_config["pad_token_id"]


def read_json(path, required=True):
    """A JSON file's content (None for an absent optional file)."""
    if not os.path.isfile(path):
        if not required:
            return None
        raise PresetError(f"{path}: missing; a preset directory needs it.")
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PresetError(f"{path}: not readable JSON ({error}).") from None


def require_file(directory, name, why) -> str:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise PresetError(f"{path}: missing; {why}.")
    return path


def wordpiece_pad_id(path, pad_token="[PAD]") -> int:
    """The line number of the padding token in a WordPiece vocabulary file."""
    with open(path, encoding="utf-8") as file:
        for index, line in enumerate(file):
            if line.rstrip("\r\n") == pad_token:
                return index
    raise PresetError(f"{path}: no {pad_token} token.")


_EXPECTED = {int: "an integer", (int, float): "a number", bool: "true or false"}


def config_field(path, config, name, kind, default=None, minimum=None):
    """``config[name]`` (or `default`) if it is of type `kind` and >= `minimum`; else refused naming file and field.

    `kind` is ``int``, ``(int, float)`` or ``bool``; JSON's true/false are not numbers here.
    """
    value = config.get(name, default)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise PresetError(f"{path}: field {name}={value!r}; expected {_EXPECTED[kind]}{bound}.")
    return value
