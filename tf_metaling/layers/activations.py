"""Activation names the layers accept beyond Keras's own.

The feed-forward activation is part of what a checkpoint computes: BERT's
original code and keras-hub's ``BertBackbone`` use the tanh approximation of
GELU, Hugging Face's ``"gelu"`` (and Keras's) is the exact (erf) form, some
models use ReLU, SiLU or the sigmoid approximation. A converted checkpoint
must run the form it was trained with, so layers resolve activations through
`get_activation`, which knows Keras's names plus ``"gelu_approximate"`` (tanh
GELU) and ``"quick_gelu"`` (``x * sigmoid(1.702 x)``). They are registered
for Keras serialization, so layer configs that hold them round-trip.
`FEED_FORWARD_ACTIVATIONS` lists the names an encoder's feed-forward
activation is checked against.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tf_metaling")
def gelu_approximate(x):
    """GELU with the tanh approximation (BERT's form; Hugging Face's ``gelu_new``)."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="tf_metaling")
def quick_gelu(x):
    """``x * sigmoid(1.702 x)`` (Hugging Face's ``quick_gelu``)."""
    return x * keras.ops.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu_approximate": gelu_approximate, "quick_gelu": quick_gelu}
# The encoder's feed-forward activations: exact and tanh GELU, and the others
# checkpoints use. Each computes exactly what its name says.
FEED_FORWARD_ACTIVATIONS = (
    "gelu", "gelu_approximate", "quick_gelu", "relu", "relu6", "silu", "tanh", "sigmoid", "mish", "linear",
)  # fmt: skip


def get_activation(identifier):
    """`keras.activations.get`, plus the names in `ACTIVATIONS`."""
    if isinstance(identifier, str) and identifier in ACTIVATIONS:
        return ACTIVATIONS[identifier]
    return keras.activations.get(identifier)
