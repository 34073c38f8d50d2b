"""Every bad input of the Serving issue gets its error, and the next valid request still succeeds."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving.client import GrpcClient, ServerError, text_inputs
from tests.serving.conftest import MAX_REQUEST_BATCH_SIZE, MAX_REQUEST_BYTES
from tests.serving.test_server_e2e import raw_request

EMBED = "/v1/models/tiny:predict"


def _embed_body(texts=("le chat",), languages=("fr",), **extra):
    return {"signature_name": "embed", "inputs": {"text": list(texts), "language": list(languages)}, **extra}


def _ids_body(token_ids, padding_mask, languages):
    return {"inputs": {"token_ids": token_ids, "padding_mask": padding_mask, "language": languages}}


REST_CASES = {
    "unknown language": ("POST", EMBED, _embed_body(languages=["de"]), 400, "Unknown language code(s): 'de'"),
    "unknown model": ("POST", "/v1/models/nope:predict", _embed_body(), 404, "Latest(nope)"),
    "unknown version": ("POST", "/v1/models/tiny/versions/7:predict", _embed_body(), 404, "Specific(tiny, 7)"),
    "unknown label": ("POST", "/v1/models/tiny/labels/canary:predict", _embed_body(), 404, "label: canary"),
    "unknown model status": ("GET", "/v1/models/nope", None, 404, "nope"),
    "unknown version status": ("GET", "/v1/models/tiny/versions/9", None, 404, "version 9"),
    "unknown signature": ("POST", EMBED, dict(_embed_body(), signature_name="nope"), 400, '"nope" not found'),
    "missing input": (
        "POST",
        EMBED,
        {"signature_name": "embed", "inputs": {"text": ["x"]}},
        400,
        "missing ['language']",
    ),
    "extra input": (
        "POST",
        EMBED,
        {"signature_name": "embed", "inputs": {"text": ["x"], "language": ["en"], "topic": ["y"]}},
        400,
        "unexpected ['topic']",
    ),
    "wrong dtype (string ids)": (
        "POST",
        EMBED,
        _ids_body([["a", "b"]], [[1, 1]], ["en"]),
        400,
        "token_ids' must hold int32",
    ),
    "wrong dtype (float ids)": ("POST", EMBED, _ids_body([[2.5, 3]], [[1, 1]], ["en"]), 400, "must hold integers"),
    "wrong dtype (number as language)": ("POST", EMBED, _embed_body(languages=[7]), 400, "must hold strings"),
    "ragged": ("POST", EMBED, _ids_body([[2, 9, 3], [2, 3]], [[1, 1, 1], [1, 1]], ["en", "fr"]), 400, "ragged"),
    "mismatched lengths": ("POST", EMBED, _ids_body([[2, 9, 3]], [[1, 1]], ["en"]), 400, "Mismatched lengths"),
    "mismatched batch sizes": (
        "POST",
        EMBED,
        _embed_body(texts=["a", "b"], languages=["en"]),
        400,
        "Mismatched batch sizes",
    ),
    "empty batch (row)": ("POST", EMBED, {"signature_name": "embed", "instances": []}, 400, "Empty batch"),
    "empty batch (columnar)": ("POST", EMBED, _embed_body(texts=[], languages=[]), 400, "Empty batch"),
    "batch over the limit": (
        "POST",
        EMBED,
        _embed_body(texts=["x"] * (MAX_REQUEST_BATCH_SIZE + 1), languages=["en"] * (MAX_REQUEST_BATCH_SIZE + 1)),
        400,
        f"limit of {MAX_REQUEST_BATCH_SIZE} examples",
    ),
    "invalid JSON": ("POST", EMBED, b'{"inputs": [1,', 400, "JSON Parse error"),
    "invalid base64": ("POST", EMBED, _embed_body(texts=[{"b64": "%%%not base64"}]), 400, "invalid base64"),
    "instances and inputs": ("POST", EMBED, dict(_embed_body(), instances=[]), 400, "exactly one of"),
    "oversize body": (
        "POST",
        EMBED,
        _embed_body(texts=["x" * MAX_REQUEST_BYTES]),
        413,
        f"limit of {MAX_REQUEST_BYTES} bytes",
    ),
    "classify with a predict signature": (
        "POST",
        "/v1/models/tiny:classify",
        {"signature_name": "embed", "examples": [{"text": "x", "language": "en"}]},
        400,
        "tensorflow/serving/classify",
    ),
    "classify with unknown language": (
        "POST",
        "/v1/models/tiny:classify",
        {"examples": [{"text": "x", "language": "zz"}], "signature_name": "classify"},
        400,
        "'zz'",
    ),
}


def _check_valid_request_still_works(rest, grpc_client, loaded_text):
    expected = loaded_text.signatures["embed"](text=tf.constant(["le chat"]), language=tf.constant(["fr"]))["embedding"]
    np.testing.assert_allclose(
        rest.predict_text("embed", ["le chat"], ["fr"])["embedding"], expected.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        grpc_client.predict_text("embed", ["le chat"], ["fr"])["embedding"], expected.numpy(), atol=1e-5
    )


@pytest.mark.parametrize("case", sorted(REST_CASES))
def test_rest_bad_input(case, server, rest, grpc_client, loaded_text):
    method, path, body, status, message = REST_CASES[case]
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    got_status, answer = raw_request(server.rest_port, method, path, payload)
    assert got_status == status, answer
    error = json.loads(answer)
    assert set(error) == {"error"} and message in error["error"], error
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


def _ids(token_ids, padding_mask, languages):
    return {
        "token_ids": np.asarray(token_ids, np.int32),
        "padding_mask": np.asarray(padding_mask, np.int32),
        "language": np.asarray([c.encode() for c in languages], dtype=object),
    }


GRPC_CASES = {
    "unknown language": (
        {"inputs": text_inputs(["x"], ["de"]), "signature_name": "embed"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "'de'",
    ),
    "unknown model": (
        {"inputs": text_inputs(["x"], ["en"]), "signature_name": "embed", "model": "nope"},
        grpc.StatusCode.NOT_FOUND,
        "nope",
    ),
    "unknown version": (
        {"inputs": text_inputs(["x"], ["en"]), "signature_name": "embed", "version": 5},
        grpc.StatusCode.NOT_FOUND,
        "Specific(tiny, 5)",
    ),
    "unknown label": (
        {"inputs": text_inputs(["x"], ["en"]), "signature_name": "embed", "label": "canary"},
        grpc.StatusCode.NOT_FOUND,
        "canary",
    ),
    "unknown signature": (
        {"inputs": text_inputs(["x"], ["en"]), "signature_name": "nope"},
        grpc.StatusCode.INVALID_ARGUMENT,
        '"nope" not found',
    ),
    "missing input": (
        {"inputs": {"text": text_inputs(["x"], ["en"])["text"]}, "signature_name": "embed"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "missing inputs: language",
    ),
    "extra input": (
        {"inputs": dict(text_inputs(["x"], ["en"]), topic=np.asarray([1])), "signature_name": "embed"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "unexpected inputs: topic",
    ),
    "wrong dtype": (
        {"inputs": dict(_ids([[2, 3]], [[1, 1]], ["en"]), token_ids=np.asarray([[2.0, 3.0]], np.float32))},
        grpc.StatusCode.INVALID_ARGUMENT,
        "to be int32 but float32 is provided",
    ),
    "wrong rank": (
        {"inputs": dict(_ids([[2, 3]], [[1, 1]], ["en"]), token_ids=np.asarray([2, 3], np.int32))},
        grpc.StatusCode.INVALID_ARGUMENT,
        "must have rank 2",
    ),
    "mismatched lengths": (
        {"inputs": _ids([[2, 9, 3]], [[1, 1]], ["en"])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "Mismatched lengths",
    ),
    "mismatched batch sizes": (
        {"inputs": _ids([[2, 3], [2, 3]], [[1, 1], [1, 1]], ["en"])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "Mismatched batch sizes",
    ),
    "empty batch": (
        {"inputs": text_inputs([], []), "signature_name": "embed"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "Empty batch",
    ),
    "batch over the limit": (
        {"inputs": text_inputs(["x"] * 9, "en"), "signature_name": "embed"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "limit of 8 examples",
    ),
    "token id out of range": (
        {"inputs": _ids([[2, 5000, 3]], [[1, 1, 1]], ["en"])},
        grpc.StatusCode.INVALID_ARGUMENT,
        "must lie in",
    ),
    "unknown output filter": (
        {"inputs": text_inputs(["x"], ["en"]), "signature_name": "embed", "output_filter": ["logits"]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found",
    ),
    "invalid UTF-8 text": (
        {
            "inputs": {"text": np.asarray([b"le chat", b"caf\xe9"], object), "language": np.asarray([b"fr", b"fr"], object)},
            "signature_name": "embed",
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        "Invalid UTF-8 in 'text' of example(s)] [1]",
    ),
    "oversize message": (
        {"inputs": text_inputs(["x" * MAX_REQUEST_BYTES], ["en"]), "signature_name": "embed"},
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(GRPC_CASES))
def test_grpc_bad_input(case, server, rest, grpc_client, loaded_text):
    request, code, message = GRPC_CASES[case]
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}", request.pop("model", "tiny"))
    try:
        with pytest.raises(ServerError) as raised:
            client.predict(**request)
    finally:
        client.close()
    assert raised.value.status == code, raised.value.message
    assert message in raised.value.message
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


def test_grpc_malformed_tensor_proto_and_metadata_field(server, grpc_client, rest, loaded_text):
    request = grpc_client.predict_request(text_inputs(["x"], ["en"]), "embed")
    request.inputs["language"].tensor_shape.dim[0].size = 3  # shape says 3 strings, content has 1
    with pytest.raises(grpc.RpcError) as raised:
        grpc_client.prediction.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    from tensorflow_serving.apis import get_model_metadata_pb2

    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_request.model_spec.name = "tiny"
    metadata_request.metadata_field.append("weights")
    with pytest.raises(grpc.RpcError) as raised:
        grpc_client.prediction.GetModelMetadata(metadata_request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServerError) as raised:
        grpc_client.classify(["x"], ["zz"])
    assert raised.value.status == grpc.StatusCode.INVALID_ARGUMENT and "'zz'" in raised.value.message
    _check_valid_request_still_works(rest, grpc_client, loaded_text)
