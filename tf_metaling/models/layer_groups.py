"""Layer groups: the shared parameters of a model, split into named groups by layer object.

Interference is measured per part of the network (do the languages disagree
in the embeddings, in block 2's attention, in the head?). A `LayerGroups`
names each part and lists which of the partition's shared variables it holds.
Groups are found from the layer objects of the model, never from variable
names: ``encoder.embedding``, then for every block its ``attention``,
``feed_forward`` and its two layer norms, the encoder's final norm (pre-LN
models), and each task head. A shared variable no group claims (a user's own
layer) goes to ``other``. Groups with no shared variable (a block whose FFN is
language specific) are left out.

Group names: ``embeddings``, ``block_{i}/attention``, ``block_{i}/feed_forward``,
``block_{i}/layer_norms``, ``final_norm``, ``masked_lm_head``, ``token_head``,
``sentence_head``, ``other``.
"""

from __future__ import annotations

import dataclasses

from tf_metaling.models.multilingual_encoder import MultilingualEncoder
from tf_metaling.models.partition import VariablePartition, partition_variables

OTHER_GROUP = "other"
HEAD_ATTRIBUTES = ("masked_lm_head", "token_head", "sentence_head")


@dataclasses.dataclass(frozen=True)
class LayerGroups:
    """Named groups of a partition's shared variables, in network order.

    Attributes:
        names: group names, from the input side to the heads.
        members: for each group, indices into ``partition.shared``.
        sizes: for each group, its number of scalar parameters.
        variable_paths: for each group, the paths of its variables (for reports).
    """

    names: tuple
    members: tuple
    sizes: tuple
    variable_paths: tuple

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"Layer group {name!r} does not exist; this model has {list(self.names)}.")
        return self.names.index(name)

    def to_json(self) -> dict:
        return {
            name: {"parameters": size, "variables": list(paths)}
            for name, size, paths in zip(self.names, self.sizes, self.variable_paths)
        }


def _encoder_of(model) -> MultilingualEncoder | None:
    if isinstance(model, MultilingualEncoder):
        return model
    encoder = getattr(model, "encoder", None)
    return encoder if isinstance(encoder, MultilingualEncoder) else None


def _group_layers(model) -> list:
    """``[(group name, [layer, ...]), ...]`` in network order."""
    groups = []
    encoder = _encoder_of(model)
    if encoder is not None:
        groups.append(("embeddings", [encoder.embedding]))
        for i, block in enumerate(encoder.blocks):
            groups.append((f"block_{i}/attention", [block.attention]))
            groups.append((f"block_{i}/feed_forward", [block.feed_forward]))
            groups.append((f"block_{i}/layer_norms", [block.attention_norm, block.feed_forward_norm]))
        if encoder.final_norm is not None:
            groups.append(("final_norm", [encoder.final_norm]))
    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if head is not None:
            groups.append((attribute, [head]))
    return groups


def _size(variable) -> int:
    size = 1
    for dimension in variable.shape:
        size *= int(dimension)
    return size


def layer_groups(model, partition: VariablePartition | None = None) -> LayerGroups:
    """Groups the shared variables of `model` (a `MultilingualModel` or encoder) by layer.

    Args:
        model: the built model.
        partition: ``partition_variables(model)`` if already made.

    Returns: a `LayerGroups` whose groups together hold every shared variable
    exactly once.
    """
    partition = partition or partition_variables(model)
    position = {id(variable): i for i, variable in enumerate(partition.shared)}
    owner = {}
    names, members = [], []
    for name, layers in _group_layers(model):
        indices = []
        for layer in layers:
            for variable in layer.trainable_variables:
                i = position.get(id(variable))
                if i is None:  # a language-specific variable of this layer
                    continue
                if i in owner:
                    raise ValueError(
                        f"Shared variable {variable.path!r} belongs to both layer groups "
                        f"{owner[i]!r} and {name!r}."
                    )
                owner[i] = name
                indices.append(i)
        if indices:
            names.append(name)
            members.append(tuple(sorted(indices)))
    unclaimed = tuple(i for i in range(len(partition.shared)) if i not in owner)
    if unclaimed:
        names.append(OTHER_GROUP)
        members.append(unclaimed)
    if not names:
        raise ValueError(f"{model.name!r} has no shared trainable variables to group.")
    sizes = tuple(sum(_size(partition.shared[i]) for i in group) for group in members)
    paths = tuple(tuple(partition.shared[i].path for i in group) for group in members)
    return LayerGroups(names=tuple(names), members=tuple(members), sizes=sizes, variable_paths=paths)
