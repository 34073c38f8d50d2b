"""Per-example language routing: the one mechanism behind every LS layer.

A language-specific weight is stored once for all languages, stacked on a
leading language axis ``[L, ...]``. For a batch, `select_for_languages` picks
each example's slice with one gather: ``weight[language_ids]`` is ``[B, ...]``.
The layer then computes with the per-example weights (a batched matmul), so the
compute per token is that of one language's layer whatever L is; only the
stored weights (memory) grow with L. The gradient of the gather is an
`tf.IndexedSlices` touching only the rows of the languages in the batch, which
`tf_metaling.optimizers.RowSparseAdam` turns into updates of those rows only.

When a whole batch holds one language (as in the paper's training), pass a
scalar ``language_ids``: the layer slices that language's weights once and runs
plain matmuls, with no per-example copies.

Layers built on this class take ``num_languages=None`` to be ordinary shared
layers, so the shared and the language-specific version of a layer kind are one
class with one computation. `language_weights` lists the stacked variables;
`tf_metaling.models.partition` uses it to split a model's variables into the
shared set and the per-language set by object identity, never by name.
"""

from __future__ import annotations

import random

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_metaling")
class LanguageRoutedLayer(keras.layers.Layer):
    """Base class for layers whose weights may be stacked per language.

    Args:
        num_languages: number of languages L; ``None`` makes the layer shared
            (one copy of every weight, `language_ids` ignored).
        **kwargs: standard Keras layer arguments (`name`, `dtype`, ...).
    """

    def __init__(self, num_languages=None, **kwargs):
        super().__init__(**kwargs)
        if num_languages is not None and int(num_languages) < 1:
            raise ValueError(f"num_languages must be >= 1 or None, got {num_languages}.")
        self.num_languages = None if num_languages is None else int(num_languages)
        self._language_weights = []

    @property
    def is_language_specific(self) -> bool:
        return self.num_languages is not None

    @property
    def language_weights(self) -> list:
        """This layer's own stacked ``[L, ...]`` variables (not sub-layers')."""
        return list(self._language_weights)

    def add_routed_weight(self, name, shape, initializer, **kwargs):
        """Adds a weight of `shape`, stacked to ``[L, *shape]`` when language specific.

        Each language's slice is initialised independently with `initializer`
        applied to the per-language shape, so a layer with L languages starts
        from L draws of the single-language initialisation.
        """
        shape = tuple(int(d) for d in shape)
        if not self.is_language_specific:
            return self.add_weight(name=name, shape=shape, initializer=initializer, **kwargs)
        per_language = _independent_initializers(initializer, self.num_languages)

        def stacked_initializer(full_shape, dtype=None):
            return tf.stack([init(shape, dtype=dtype) for init in per_language])

        variable = self.add_weight(
            name=name,
            shape=(self.num_languages,) + shape,
            initializer=stacked_initializer,
            **kwargs,
        )
        self._language_weights.append(variable)
        return variable

    def select_for_languages(self, weight, language_ids):
        """``weight`` for the given languages: ``[...]`` for a scalar id, ``[B, ...]`` for ``[B]`` ids."""
        if not self.is_language_specific:
            return weight
        if language_ids is None:
            raise ValueError(
                f"Layer {self.name!r} is language specific ({self.num_languages} "
                "languages) and needs `language_ids`."
            )
        language_ids = tf.convert_to_tensor(language_ids)
        if language_ids.shape.rank not in (0, 1):
            raise ValueError(
                f"Layer {self.name!r}: language_ids must be a scalar (one language "
                f"for the batch) or a [batch] vector; got shape {language_ids.shape}."
            )
        return tf.gather(weight, tf.cast(language_ids, tf.int32))

    def get_config(self):
        config = super().get_config()
        config.update({"num_languages": self.num_languages})
        return config


def _independent_initializers(initializer, count):
    """`count` initializers drawing independent values (Keras reuses one seed per instance)."""
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" not in config:  # deterministic initializers (zeros, ones, constant)
        return [initializer] * count
    base = config.get("seed")
    if base is None:
        # Python's RNG is what keras.utils.set_random_seed seeds, as Keras does.
        base = random.randint(1, 10**9)
    return [
        initializer.__class__.from_config({**config, "seed": int(base) + 7919 * i})
        for i in range(count)
    ]


def routed_dense(inputs, kernel, bias=None):
    """``inputs @ kernel + bias`` for a shared or a per-example kernel.

    `inputs` is ``[B, ..., d_in]``. `kernel` is ``[d_in, d_out]`` (shared, or one
    language for the whole batch) or ``[B, d_in, d_out]`` (one kernel per
    example, from `select_for_languages`); `bias` is ``[d_out]`` or ``[B, d_out]``.
    """
    if kernel.shape.rank == 2:
        outputs = tf.tensordot(inputs, kernel, axes=[[inputs.shape.rank - 1], [0]])
        if bias is not None:
            outputs = outputs + bias
        return outputs
    # Per-example kernels: flatten the middle axes into one and batch-matmul.
    rank = inputs.shape.rank
    if rank == 2:
        outputs = tf.squeeze(tf.matmul(inputs[:, None, :], kernel), axis=1)
    elif rank == 3:
        outputs = tf.matmul(inputs, kernel)
    else:
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [shape[0], -1, inputs.shape[-1]])
        outputs = tf.reshape(
            tf.matmul(flat, kernel), tf.concat([shape[:-1], tf.shape(kernel)[-1:]], 0)
        )
    if bias is not None:
        outputs = outputs + expand_per_example(bias, rank)
    return outputs


def expand_per_example(values, rank):
    """Reshapes per-example ``[B, d]`` values to broadcast over ``[B, ..., d]`` of `rank`."""
    if values.shape.rank == 1:
        return values
    for _ in range(rank - 2):
        values = tf.expand_dims(values, 1)
    return values
