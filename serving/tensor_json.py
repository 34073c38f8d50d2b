"""TF Serving's JSON encoding of tensors (REST API), both ways.

Requests: row format (``"instances"``: one item per example; an object per
example when the signature has several inputs) or columnar format
(``"inputs"``: one nested list per input, or the bare value for a single
input). Strings may be given as ``{"b64": "..."}``. Numbers must fit the
signature's dtype: an integer input rejects 1.5, a float input takes 1 and 1.5.
Responses: ``"predictions"`` (row) or ``"outputs"`` (columnar); string outputs
whose name ends in ``_bytes`` are written as ``{"b64": ...}``, other strings as
UTF-8 text.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
import tensorflow as tf

from serving.errors import invalid_argument

ROW, COLUMNAR = "row", "columnar"


def parse_predict_body(body, signature) -> tuple:
    """A decoded JSON request body -> (``{input: numpy array}``, format)."""
    if not isinstance(body, dict):
        raise invalid_argument('The request body must be a JSON object with "instances" or "inputs".')
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows == has_columns:
        raise invalid_argument(
            'The request must have exactly one of "instances" (row format) or "inputs" (columnar format).'
        )
    extra = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if extra:
        raise invalid_argument(
            f"Unexpected keys in the request: {extra}; expected signature_name and instances or inputs."
        )
    specs = signature.inputs
    if has_rows:
        return _parse_rows(body["instances"], specs), ROW
    return _parse_columns(body["inputs"], specs), COLUMNAR


def _parse_rows(instances, specs) -> dict:
    if not isinstance(instances, list):
        raise invalid_argument('"instances" must be a list with one item per example.')
    if not instances:
        raise invalid_argument('Empty batch: "instances" is an empty list.')
    names = sorted(specs)
    if len(names) == 1 and not (isinstance(instances[0], dict) and set(instances[0]) == set(names)):
        name = names[0]
        return {name: to_array(instances, specs[name], name)}
    columns = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise invalid_argument(
                f"instances[{index}] must be an object with the inputs {names} (the signature has several inputs)."
            )
        missing, extra = sorted(set(names) - set(instance)), sorted(set(instance) - set(names))
        if missing or extra:
            raise invalid_argument(
                f"instances[{index}] has inputs {sorted(instance)}; expected {names}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
                + "."
            )
        for name in names:
            columns[name].append(instance[name])
    return {name: to_array(values, specs[name], name) for name, values in columns.items()}


def _parse_columns(inputs, specs) -> dict:
    names = sorted(specs)
    if isinstance(inputs, dict) and not (len(names) == 1 and set(inputs) == {"b64"}):
        missing, extra = sorted(set(names) - set(inputs)), sorted(set(inputs) - set(names))
        if missing or extra:
            raise invalid_argument(
                f'"inputs" has {sorted(inputs)}; expected {names}'
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
                + "."
            )
        return {name: to_array(inputs[name], specs[name], name) for name in names}
    if len(names) != 1:
        raise invalid_argument(f'"inputs" must be an object with the inputs {names}.')
    return {names[0]: to_array(inputs, specs[names[0]], names[0])}


def to_array(value, spec, name: str) -> np.ndarray:
    """A nested JSON list -> numpy array of the spec's dtype (raises INVALID_ARGUMENT)."""
    dtype = spec.dtype
    if dtype == tf.string:
        data, shape = _strings(value, name)
        array = np.empty(len(data), dtype=object)
        array[:] = data
        return array.reshape(shape)
    try:
        array = np.asarray(value)
    except ValueError:
        raise invalid_argument(
            f"Input '{name}' is ragged: every list at the same depth must have the same length."
        ) from None
    if array.size == 0 and array.dtype.kind == "f":  # [] parses as float64
        return array.astype(dtype.as_numpy_dtype)
    kind = array.dtype.kind
    if kind == "O" or kind in "US":
        raise invalid_argument(f"Input '{name}' must hold {dtype.name} numbers; found {_found(value)}.")
    if dtype.is_bool:
        if kind != "b":
            raise invalid_argument(f"Input '{name}' must hold true/false values for {dtype.name}.")
        return array.astype(np.bool_)
    if dtype.is_integer:
        if kind not in "iu":
            raise invalid_argument(
                f"Input '{name}' must hold integers for {dtype.name}; found {'true/false' if kind == 'b' else 'non-integer numbers'}."
            )
        info = np.iinfo(dtype.as_numpy_dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise invalid_argument(f"Input '{name}' has values outside the {dtype.name} range.")
        return array.astype(dtype.as_numpy_dtype)
    if dtype.is_floating:
        if kind not in "iuf":
            raise invalid_argument(f"Input '{name}' must hold numbers for {dtype.name}.")
        return array.astype(dtype.as_numpy_dtype)
    raise invalid_argument(f"Input '{name}' has dtype {dtype.name}, which the REST API does not support.")


def _found(value) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    return type(value).__name__ if value is not None else "null"


def _strings(value, name):
    """Flat list of bytes and the shape of a nested list of strings / {"b64": ...}."""
    flat = []

    def walk(item, depth):
        if isinstance(item, list):
            shapes = [walk(child, depth + 1) for child in item]
            if any(s != shapes[0] for s in shapes[1:]):
                raise invalid_argument(
                    f"Input '{name}' is ragged: every list at the same depth must have the same length."
                )
            return (len(item),) + (shapes[0] if shapes else ())
        flat.append(_string_value(item, name))
        return ()

    shape = walk(value, 0)
    return flat, shape


def _string_value(item, name) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str):
        try:
            return base64.b64decode(item["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument(f"Input '{name}' has invalid base64 in {{\"b64\": ...}}.") from None
    raise invalid_argument(
        f'Input \'{name}\' must hold strings (or {{"b64": "..."}} objects); found {type(item).__name__ if item is not None else "null"}.'
    )


# ---------------------------------------------------------------------- responses
def to_json_value(name: str, array: np.ndarray):
    """A numpy output -> nested JSON-compatible lists."""
    if array.dtype == object or array.dtype.kind == "S":
        binary = name.endswith("_bytes")
        convert = (
            (lambda b: {"b64": base64.b64encode(b).decode("ascii")})
            if binary
            else (lambda b: b.decode("utf-8", errors="replace"))
        )
        return np.vectorize(convert, otypes=[object])(array).tolist() if array.size else array.tolist()
    if array.dtype.kind == "f":
        return array.tolist()  # json.dumps writes NaN / Infinity as TF Serving does
    return array.tolist()


def make_predict_response(outputs: dict, fmt: str) -> dict:
    names = sorted(outputs)
    if fmt == COLUMNAR:
        if len(names) == 1:
            return {"outputs": to_json_value(names[0], outputs[names[0]])}
        return {"outputs": {name: to_json_value(name, outputs[name]) for name in names}}
    sizes = {name: (outputs[name].shape[0] if outputs[name].ndim else None) for name in names}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise invalid_argument(
            f'Output tensors have different batch sizes {sizes}; use the columnar format ("inputs").'
        )
    if len(names) == 1:
        return {"predictions": to_json_value(names[0], outputs[names[0]])}
    columns = {name: to_json_value(name, outputs[name]) for name in names}
    count = next(iter(sizes.values()))
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(count)]}


# ---------------------------------------------------------------------- classify
def parse_classify_body(document) -> tuple:
    """``{"signature_name", "context", "examples"}`` -> (signature_name, serialized tf.Examples)."""
    if not isinstance(document, dict):
        raise invalid_argument('The request body must be a JSON object with "examples".')
    extra = sorted(set(document) - {"signature_name", "context", "examples"})
    if extra:
        raise invalid_argument(f"Unexpected keys in the request: {extra}; expected signature_name, context, examples.")
    signature_name = document.get("signature_name")
    if signature_name is not None and not isinstance(signature_name, str):
        raise invalid_argument('"signature_name" must be a string.')
    examples = document.get("examples")
    if not isinstance(examples, list):
        raise invalid_argument('"examples" must be a list of objects (one per example).')
    if not examples:
        raise invalid_argument('Empty batch: "examples" is an empty list.')
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise invalid_argument('"context" must be an object of features.')
    serialized = []
    for index, features in enumerate(examples):
        if not isinstance(features, dict):
            raise invalid_argument(f"examples[{index}] must be an object of features.")
        clash = sorted(set(features) & set(context))
        if clash:
            raise invalid_argument(f"examples[{index}] repeats context features {clash}.")
        example = tf.train.Example()
        for name, value in list(context.items()) + list(features.items()):
            _fill_feature(example.features.feature[name], value, f"examples[{index}].{name}")
        serialized.append(example.SerializeToString())
    return signature_name, serialized


def _fill_feature(feature, value, where):
    values = value if isinstance(value, list) else [value]
    if not values:
        raise invalid_argument(f"{where}: a feature needs at least one value.")
    if all(isinstance(v, (str, dict)) for v in values):
        feature.bytes_list.value.extend(_string_value(v, where) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise invalid_argument(f"{where}: values must all be strings, all integers or all numbers.")


def classification_result(classes, scores) -> list:
    """Classify outputs -> ``[[[label, score], ...] per example]`` as TF Serving writes them."""
    if classes is None and scores is None:
        raise invalid_argument("The classify signature has neither a classes nor a scores output.")
    count = (classes if classes is not None else scores).shape[0]
    width = (classes if classes is not None else scores).shape[1]
    result = []
    for row in range(count):
        pairs = []
        for column in range(width):
            label = classes[row, column].decode("utf-8", errors="replace") if classes is not None else ""
            score = float(scores[row, column]) if scores is not None else 0.0
            pairs.append([label, score])
        result.append(pairs)
    return result
