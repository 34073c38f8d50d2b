"""Layer normalisation with exact second derivatives, shared or per language.

Keras's own `LayerNormalization` computes the variance with `tf.nn.moments`,
which stops the gradient through the mean inside the variance: first
derivatives are right, second derivatives are not (the Hessian loses layer
norm's shift invariance). The meta step differentiates through a gradient, so
every layer norm on its path must be this one, which writes the statistics out
so that TensorFlow differentiates them exactly to any order.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_metaling.layers.language_routed_layer import LanguageRoutedLayer, expand_per_example


def layer_norm(inputs, gamma, beta, epsilon):
    """Normalises the last axis of `inputs`; `gamma`/`beta` are ``[d]`` or per-example ``[B, d]``."""
    compute_dtype = inputs.dtype
    if compute_dtype in (tf.float16, tf.bfloat16):  # statistics in float32 for stability
        inputs = tf.cast(inputs, tf.float32)
    mean = tf.reduce_mean(inputs, axis=-1, keepdims=True)
    centered = inputs - mean
    variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
    normalized = centered * tf.math.rsqrt(variance + tf.cast(epsilon, inputs.dtype))
    normalized = tf.cast(normalized, compute_dtype)
    rank = normalized.shape.rank
    return normalized * expand_per_example(gamma, rank) + expand_per_example(beta, rank)


@keras.saving.register_keras_serializable(package="tf_metaling")
class LayerNorm(LanguageRoutedLayer):
    """Layer normalisation over the last axis, optionally with per-language scale and shift.

    With `num_languages` set this is the paper's language-specific layer norm:
    each example is normalised with its own language's ``gamma``/``beta``.

    Args:
        epsilon: added to the variance. XLM uses 1e-12.
        num_languages: ``None`` for a shared layer norm, else the number of languages.
        gamma_initializer, beta_initializer: initialisers of scale and shift.

    Call arguments:
        inputs: ``[batch, ..., hidden]`` float tensor.
        language_ids: ``[batch]`` int ids, or a scalar id for a one-language
            batch; ignored when shared.

    Example:
    >>> norm = LayerNorm(num_languages=3)
    >>> norm(tf.ones([2, 5, 8]), tf.constant([0, 2])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        epsilon=1e-12,
        num_languages=None,
        gamma_initializer="ones",
        beta_initializer="zeros",
        **kwargs,
    ):
        super().__init__(num_languages=num_languages, **kwargs)
        self.epsilon = float(epsilon)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        self.gamma = self.add_routed_weight("gamma", (hidden_dim,), self.gamma_initializer)
        self.beta = self.add_routed_weight("beta", (hidden_dim,), self.beta_initializer)
        self.built = True

    def call(self, inputs, language_ids=None):
        gamma = self.select_for_languages(self.gamma, language_ids)
        beta = self.select_for_languages(self.beta, language_ids)
        return layer_norm(inputs, gamma, beta, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "epsilon": self.epsilon,
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
                "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            }
        )
        return config
