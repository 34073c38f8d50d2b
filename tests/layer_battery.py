"""The battery every public layer passes (in the manner of keras-hub's LayerTestCase).

For a layer class and constructor arguments: config round trip, symbolic call
inside a functional model, eager call, one `fit` step that changes weights,
and a `.keras` save/load that reproduces the outputs exactly.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf


def run_layer_battery(
    layer_cls,
    init_kwargs,
    input_specs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    tmp_path,
    call_kwargs=None,
):
    """Runs the battery.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_specs: list of ``(shape_without_batch, dtype)`` for the call's
            positional tensor arguments, in order.
        input_data: list of numpy arrays (with batch axis) matching `input_specs`.
        expected_output_shape: shape of the eager output.
        expected_num_trainable_weights: number of trainable weights after build.
        tmp_path: a pytest tmp_path.
        call_kwargs: non-tensor keyword arguments for every call.
    """
    call_kwargs = call_kwargs or {}

    # 1. Config round trip: get_config() gives exactly the constructor args back.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config, f"{layer_cls.__name__}.get_config() lacks constructor arg {key!r}"
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config

    # 2. Eager call.
    eager_inputs = [tf.constant(x) for x in input_data]
    outputs = layer(*eager_inputs, **call_kwargs)
    assert tuple(outputs.shape) == tuple(expected_output_shape), outputs.shape
    assert len(layer.trainable_weights) == expected_num_trainable_weights, [
        w.path for w in layer.trainable_weights
    ]

    # 3. Symbolic call inside a user's functional model.
    symbolic_inputs = [keras.Input(shape=shape, dtype=dtype) for shape, dtype in input_specs]
    functional_layer = layer_cls(**init_kwargs)
    symbolic_outputs = functional_layer(*symbolic_inputs, **call_kwargs)
    assert tuple(symbolic_outputs.shape[1:]) == tuple(expected_output_shape[1:])
    model = keras.Model(symbolic_inputs, symbolic_outputs)

    # 4. One fit step changes the trainable weights (if any).
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    target = np.random.RandomState(0).normal(size=expected_output_shape).astype("float32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(input_data, target, batch_size=len(input_data[0]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if expected_num_trainable_weights:
        changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
        assert any(changed), "one fit step changed no weight"

    # 5. .keras save/load reproduces the outputs.
    expected = model.predict(input_data, verbose=0)
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(input_data, verbose=0), expected, rtol=1e-6, atol=1e-6)
    inner = [lyr for lyr in reloaded.layers if isinstance(lyr, layer_cls)]
    assert inner and inner[0].get_config() == functional_layer.get_config()
