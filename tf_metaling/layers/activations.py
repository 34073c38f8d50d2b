"""Activation names the layers accept beyond Keras's own.

BERT computes GELU with the tanh approximation; Keras's ``"gelu"`` is the
exact (erf) form. A converted BERT must use the same form as its checkpoint,
so layers resolve activations through `get_activation`, which also knows
``"gelu_approximate"``. It is registered for Keras serialization, so layer
configs that hold it round-trip.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tf_metaling")
def gelu_approximate(x):
    """GELU with the tanh approximation (BERT's form)."""
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {"gelu_approximate": gelu_approximate}


def get_activation(identifier):
    """`keras.activations.get`, plus the names in `ACTIVATIONS`."""
    if isinstance(identifier, str) and identifier in ACTIVATIONS:
        return ACTIVATIONS[identifier]
    return keras.activations.get(identifier)
