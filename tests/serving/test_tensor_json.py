"""TF Serving's JSON tensor encoding: row / columnar requests, b64, dtype rules, responses."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import tensorflow as tf

from serving import tensor_json
from serving.errors import ServingError
from serving.servable import SignatureInfo, TensorSpecInfo


def _signature(**inputs):
    specs = {name: TensorSpecInfo(name, dtype, shape) for name, (dtype, shape) in inputs.items()}
    return SignatureInfo("s", "tensorflow/serving/predict", specs, {}, None)


IDS = _signature(token_ids=(tf.int32, (-1, -1)), language=(tf.string, (-1,)))


def test_row_and_columnar_give_the_same_arrays():
    rows, fmt = tensor_json.parse_predict_body(
        {"instances": [{"token_ids": [2, 3], "language": "en"}, {"token_ids": [4, 5], "language": {"b64": "c3c="}}]},
        IDS,
    )
    assert fmt == tensor_json.ROW
    columns, fmt = tensor_json.parse_predict_body(
        {"inputs": {"token_ids": [[2, 3], [4, 5]], "language": ["en", "sw"]}}, IDS
    )
    assert fmt == tensor_json.COLUMNAR
    for arrays in (rows, columns):
        assert arrays["token_ids"].dtype == np.int32 and arrays["token_ids"].tolist() == [[2, 3], [4, 5]]
        assert arrays["language"].tolist() == [b"en", b"sw"]


def test_single_input_signatures_take_bare_values():
    signature = _signature(inputs=(tf.string, (-1,)))
    arrays, _ = tensor_json.parse_predict_body(
        {"instances": [{"b64": base64.b64encode(b"\x00\xff").decode()}, "a"]}, signature
    )
    assert arrays["inputs"].tolist() == [b"\x00\xff", b"a"]
    arrays, _ = tensor_json.parse_predict_body({"inputs": ["x", "y"]}, signature)
    assert arrays["inputs"].tolist() == [b"x", b"y"]


@pytest.mark.parametrize(
    "value, message",
    [
        ([[1.5, 2]], "integers"),
        ([[True, False]], "true/false"),
        ([["a"]], "int32"),
        ([[1, None]], "int32"),
        ([[1, 2], [3]], "ragged"),
        ([[2**40]], "range"),
    ],
)
def test_integer_inputs_reject_other_values(value, message):
    with pytest.raises(ServingError, match=message):
        tensor_json.to_array(value, TensorSpecInfo("token_ids", tf.int32, (-1, -1)), "token_ids")


def test_float_inputs_take_integers_and_strings_reject_numbers():
    array = tensor_json.to_array([[1, 2.5]], TensorSpecInfo("x", tf.float32, None), "x")
    assert array.dtype == np.float32 and array.tolist() == [[1.0, 2.5]]
    with pytest.raises(ServingError, match="must hold strings"):
        tensor_json.to_array(["a", 3], TensorSpecInfo("s", tf.string, None), "s")
    with pytest.raises(ServingError, match="ragged"):
        tensor_json.to_array([["a"], ["b", "c"]], TensorSpecInfo("s", tf.string, None), "s")
    with pytest.raises(ServingError, match="invalid base64"):
        tensor_json.to_array([{"b64": "a"}], TensorSpecInfo("s", tf.string, None), "s")


def test_responses_follow_the_documented_shapes():
    outputs = {
        "scores": np.asarray([[0.5, np.nan]], np.float32),
        "label_bytes": np.asarray([b"\x01"], dtype=object),
        "name": np.asarray([b"caf\xc3\xa9"], dtype=object),
    }
    rows = tensor_json.make_predict_response(outputs, tensor_json.ROW)
    assert rows["predictions"][0]["label_bytes"] == {"b64": "AQ=="}
    assert rows["predictions"][0]["name"] == "café"
    assert np.isnan(rows["predictions"][0]["scores"][1])
    columns = tensor_json.make_predict_response({"scores": outputs["scores"]}, tensor_json.COLUMNAR)
    assert set(columns) == {"outputs"} and columns["outputs"][0][0] == 0.5
    with pytest.raises(ServingError, match="columnar"):
        tensor_json.make_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, tensor_json.ROW)


def test_classify_bodies_become_examples():
    name, examples = tensor_json.parse_classify_body(
        {
            "signature_name": "classify",
            "context": {"language": "fr"},
            "examples": [{"text": "le chat", "weight": 1.5, "ids": [1, 2]}],
        }
    )
    example = tf.train.Example.FromString(examples[0])
    features = example.features.feature
    assert name == "classify"
    assert features["language"].bytes_list.value == [b"fr"] and features["text"].bytes_list.value == [b"le chat"]
    assert features["weight"].float_list.value == [1.5] and features["ids"].int64_list.value == [1, 2]
    with pytest.raises(ServingError, match="repeats context"):
        tensor_json.parse_classify_body({"context": {"a": 1}, "examples": [{"a": 2}]})
    assert tensor_json.classification_result(np.asarray([[b"x", b"y"]], dtype=object), np.asarray([[0.25, 0.75]])) == [
        [["x", 0.25], ["y", 0.75]]
    ]
