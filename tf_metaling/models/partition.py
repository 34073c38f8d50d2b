"""The explicit split of a model's trainable variables into shared and per-language sets.

The split is made from the object structure: a variable is language specific
exactly when a `LanguageRoutedLayer` created it with a language axis
(`add_routed_weight`). Names play no part (matching language codes inside
variable names is how the reference implementation ended up moving every
adapter: the code "te" occurs in many names).

Each language-specific variable is stacked ``[L, ...]``; language l's part is
row l. `language_slice` takes that row from a variable, a value or a
gradient (dense or `tf.IndexedSlices`), for the meta step and for exporting or
importing one language's module.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer


@dataclasses.dataclass(frozen=True)
class VariablePartition:
    """Trainable variables of a model, split into shared (theta) and per-language (phi).

    Attributes:
        shared: variables used by every language, in model order.
        language: stacked ``[L, ...]`` variables, in model order.
        shared_positions / language_positions: indices of each set in
            ``model.trainable_variables`` (to assemble a stateless call).
        num_languages: L.
    """

    shared: tuple
    language: tuple
    shared_positions: tuple
    language_positions: tuple
    num_languages: int

    def language_values(self, index):
        """Language `index`'s slices of every LS variable (tensors), in `language` order."""
        return [language_slice(variable, index) for variable in self.language]

    @property
    def num_shared_parameters(self) -> int:
        return sum(int(tf.size(v)) for v in self.shared)

    @property
    def num_language_parameters_per_language(self) -> int:
        return sum(int(tf.size(v)) // self.num_languages for v in self.language)


def partition_variables(model) -> VariablePartition:
    """Splits ``model.trainable_variables`` into shared and language-specific sets.

    Works for any Keras layer or model containing `LanguageRoutedLayer`s (the
    encoder, a `MultilingualModel`, or a user's functional model).
    """
    if not model.built:
        raise ValueError(f"{model.name!r} must be built before its variables can be partitioned.")
    routed = {}
    num_languages = set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, LanguageRoutedLayer) and layer.is_language_specific:
            for variable in layer.language_weights:
                routed[id(variable)] = variable
            if layer.language_weights:
                num_languages.add(layer.num_languages)
    if len(num_languages) > 1:
        raise ValueError(
            f"{model.name!r} mixes language-specific layers with different language "
            f"counts {sorted(num_languages)}."
        )
    shared, language, shared_positions, language_positions = [], [], [], []
    for position, variable in enumerate(model.trainable_variables):
        if id(variable) in routed:
            language.append(variable)
            language_positions.append(position)
        else:
            shared.append(variable)
            shared_positions.append(position)
    return VariablePartition(
        shared=tuple(shared),
        language=tuple(language),
        shared_positions=tuple(shared_positions),
        language_positions=tuple(language_positions),
        num_languages=num_languages.pop() if num_languages else 0,
    )


def language_slice(stacked, index):
    """Row `index` of a stacked ``[L, ...]`` variable, tensor or `tf.IndexedSlices` gradient.

    For an `IndexedSlices` gradient (what a per-example gather produces) the
    row is the sum of the slices whose index is `index`, zero if there are none.
    """
    if isinstance(stacked, tf.IndexedSlices):
        selected = tf.cast(tf.equal(stacked.indices, tf.cast(index, stacked.indices.dtype)), stacked.values.dtype)
        selected = tf.reshape(selected, [-1] + [1] * (stacked.values.shape.rank - 1))
        return tf.reduce_sum(stacked.values * selected, axis=0)
    if hasattr(stacked, "value") and not isinstance(stacked, tf.Tensor):
        stacked = stacked.value
    return tf.gather(stacked, index)
