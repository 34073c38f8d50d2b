"""Networks and trainable models: the encoder, the task model, variable partition and groups, LS modules."""

from tf_metaling.models.language_modules import (
    add_language,
    language_module,
    load_language_module,
    save_language_module,
)
from tf_metaling.models.layer_groups import LayerGroups, layer_groups
from tf_metaling.models.multilingual_encoder import MultilingualEncoder
from tf_metaling.models.multilingual_model import MultilingualModel
from tf_metaling.models.partition import VariablePartition, language_slice, partition_variables

__all__ = [
    "LayerGroups",
    "MultilingualEncoder",
    "MultilingualModel",
    "VariablePartition",
    "add_language",
    "language_module",
    "language_slice",
    "layer_groups",
    "load_language_module",
    "partition_variables",
    "save_language_module",
]
