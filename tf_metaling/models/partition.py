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


def _routed_variables(model) -> tuple[dict, int]:
    """``({id: variable}, L)`` of every language-specific variable, trainable or frozen."""
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
    return routed, (num_languages.pop() if num_languages else 0)


def language_specific_variables(model) -> tuple:
    """Every stacked ``[L, ...]`` language-specific variable of `model`, frozen ones too, in ``model.weights`` order."""
    routed, _ = _routed_variables(model)
    return tuple(variable for variable in model.weights if id(variable) in routed)


def variable_key(variable) -> str:
    """A variable's path without its outermost layer's name: equal across models of one layout.

    Inner names are fixed by the layers (``block_0/adapter_ffn/up_kernel``);
    only the outermost is auto-numbered (``multilingual_encoder_3``).
    """
    return variable.path.split("/", 1)[-1]


def partition_variables(model) -> VariablePartition:
    """Splits ``model.trainable_variables`` into shared and language-specific sets.

    Works for any Keras layer or model containing `LanguageRoutedLayer`s (the
    encoder, a `MultilingualModel`, or a user's functional model).
    """
    routed, num_languages = _routed_variables(model)
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
        num_languages=num_languages,
    )


def language_count(model, partition: VariablePartition) -> int:
    """L: the model's language vocabulary size (a fully shared model has no LS variables to count)."""
    vocabulary = getattr(model, "language_vocabulary", None)
    return len(vocabulary) if vocabulary is not None else partition.num_languages


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


# Which weights fine-tuning trains (`select_trainable`).
TRAIN_WEIGHTS = ("all", "language_specific_and_heads", "heads")


def select_trainable(model, train_weights: str = "all") -> list:
    """Freezes every variable of a `MultilingualModel` outside the chosen set; returns the trained ones.

    ``"all"`` trains everything; ``"language_specific_and_heads"`` trains the
    language-specific weights (e.g. adapters) and the task heads, keeping the
    shared (e.g. pretrained) encoder fixed; ``"heads"`` trains the task heads
    only. The tied masked-LM output is the shared token embedding, so it stays
    frozen unless everything trains. Frozen variables leave
    ``model.trainable_variables``, so optimizers, the meta step and the
    partition see only the trained ones.
    """
    if train_weights not in TRAIN_WEIGHTS:
        raise ValueError(f"train_weights={train_weights!r}: expected one of {TRAIN_WEIGHTS}.")
    language = {id(v) for v in partition_variables(model).language}
    heads = [getattr(model, name, None) for name in ("masked_lm_head", "token_head", "sentence_head")]
    head_variables = {id(v) for head in heads if head is not None for v in head.weights}
    trained = []
    for variable in model.weights:
        train = (
            train_weights == "all"
            or id(variable) in head_variables
            or (train_weights == "language_specific_and_heads" and id(variable) in language)
        )
        if variable.trainable and not train:
            variable.trainable = False
        if variable.trainable:
            trained.append(variable)
    if not trained:
        raise ValueError(f"train_weights={train_weights!r} leaves {model.name!r} with nothing to train.")
    return trained
