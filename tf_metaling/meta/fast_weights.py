"""Running a model with substituted ("fast") weights, differentiably.

The meta step evaluates the model at looked-ahead shared weights
``theta' = theta - alpha * g`` without writing them into the variables (that
would cut the graph from theta' back to g and to the LS parameters). Keras 3's
`stateless_call` runs a layer with any tensors standing in for its variables;
here the shared and language-specific sets of a `VariablePartition` are
substituted separately, inside or outside `tf.function`, and gradients flow
to whatever tensors were passed in.
"""

from __future__ import annotations

from tf_metaling.models.partition import VariablePartition


def call_with_weights(
    model,
    partition: VariablePartition,
    shared_values,
    language_values,
    *args,
    update_state=True,
    **kwargs,
):
    """Calls ``model(*args, **kwargs)`` with `shared_values` and `language_values` as weights.

    Args:
        model: the built Keras layer or model that `partition` was made from.
        partition: `partition_variables(model)`.
        shared_values: tensors for ``partition.shared`` (same order and shapes),
            or None to use the variables' current values.
        language_values: tensors for ``partition.language``, or None likewise.
        update_state: write the non-trainable state the call changed (dropout
            seed counters) back into the model, as a normal call would.

    Returns: the model's outputs.
    """
    trainable = [variable.value for variable in model.trainable_variables]
    for positions, values, name in (
        (partition.shared_positions, shared_values, "shared"),
        (partition.language_positions, language_values, "language"),
    ):
        if values is None:
            continue
        values = list(values)
        if len(values) != len(positions):
            raise ValueError(
                f"call_with_weights: got {len(values)} {name} values for {len(positions)} "
                f"{name} variables of {model.name!r}."
            )
        for position, value in zip(positions, values):
            trainable[position] = value
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    outputs, new_state = model.stateless_call(trainable, non_trainable, *args, **kwargs)
    if update_state:
        for variable, value in zip(model.non_trainable_variables, new_state):
            variable.assign(value)
    return outputs
