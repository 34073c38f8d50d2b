"""End to end on loopback sockets: REST and gRPC answers equal direct calls of the SavedModel."""

from __future__ import annotations

import base64
import http.client
import json
import logging

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import signatures as sig
from serving.client import GrpcClient, RestClient, ServerError, text_inputs
from serving.warmup import make_example
from tests.serving import fixtures

TEXTS = ["the cat sat on the mat", "le [MASK] est sur le tapis", "paka ameketi [MASK]", "a dog [MASK]"]
LANGUAGES = ["en", "fr", "sw", "sw"]


def _direct(loaded, name, inputs):
    return {k: v.numpy() for k, v in loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _text(array):
    return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(array).tolist()


def _assert_same(served: dict, direct: dict):
    assert set(served) == set(direct)
    for key, expected in direct.items():
        value = np.asarray(served[key])
        if expected.dtype == object:  # REST answers text, gRPC bytes
            assert _text(np.asarray(value, dtype=object)) == _text(expected), key
        else:
            np.testing.assert_allclose(value.astype(expected.dtype), expected, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", [sig.SERVE_TEXT, sig.EMBED, sig.FILL_MASK, sig.TAG, sig.SENTENCE_CLASSIFICATION])
def test_text_signatures_match_direct_calls(name, rest, grpc_client, loaded_text):
    inputs = text_inputs(TEXTS, LANGUAGES)
    direct = _direct(loaded_text, name, inputs)
    _assert_same(rest.predict(inputs, name), direct)
    _assert_same(grpc_client.predict(inputs, name), direct)


def test_prepared_requests_are_replayed_unchanged(rest, grpc_client, loaded_text):
    """Load generators send requests built once: a PredictRequest proto, or a JSON body as bytes."""
    inputs = text_inputs(TEXTS, LANGUAGES)
    direct = _direct(loaded_text, sig.EMBED, inputs)
    request = grpc_client.predict_request(inputs, sig.EMBED)
    for _ in range(2):
        response = grpc_client.send(request)
        _assert_same({k: tf.make_ndarray(v) for k, v in response.outputs.items()}, direct)
    body = json.dumps({"signature_name": sig.EMBED, "inputs": {"text": TEXTS, "language": LANGUAGES}}).encode()
    for _ in range(2):
        outputs = rest.request("POST", "/v1/models/tiny:predict", body)["outputs"]
        if not isinstance(outputs, dict):  # TF Serving leaves a single output unnamed
            (name,) = direct
            outputs = {name: outputs}
        _assert_same(outputs, direct)


def test_token_id_signature_row_format_and_ids_model(rest, grpc_client, loaded_text, loaded_ids, server, tokenizer):
    batch = fixtures.id_batch(("sw", "en", "fr"), vocabulary_size=tokenizer.vocab_size)
    direct = _direct(loaded_text, sig.SERVING_DEFAULT, batch)
    rows = rest.predict(batch, columnar=False)  # serving_default is the default signature
    assert len(rows) == 3
    np.testing.assert_allclose(np.asarray([r["embedding"] for r in rows]), direct["embedding"], atol=1e-5)
    np.testing.assert_allclose(np.asarray([r["sequence_output"] for r in rows]), direct["sequence_output"], atol=1e-5)
    _assert_same(grpc_client.predict(batch), direct)
    ids_client = GrpcClient(f"127.0.0.1:{server.grpc_port}", "ids")
    try:
        _assert_same(
            ids_client.predict(fixtures.id_batch(), sig.FILL_MASK),
            _direct(loaded_ids, sig.FILL_MASK, fixtures.id_batch()),
        )
    finally:
        ids_client.close()


def test_classify_api_over_rest_and_grpc(rest, grpc_client, loaded_text):
    examples = [make_example(True, t, code).SerializeToString() for t, code in zip(TEXTS, LANGUAGES)]
    scores = _direct(loaded_text, sig.CLASSIFY, {"inputs": np.asarray(examples, dtype=object)})["scores"]
    for client in (rest, grpc_client):
        result = client.classify(TEXTS, LANGUAGES)
        assert [[label for label, _ in row] for row in result] == [fixtures.CLASS_NAMES] * len(TEXTS)
        np.testing.assert_allclose([[score for _, score in row] for row in result], scores, atol=1e-5)
    # The classify signature also answers Predict, with serialized examples as {"b64": ...}.
    rows = rest.request(
        "POST",
        "/v1/models/tiny:predict",
        {
            "signature_name": "classify",
            "instances": [{"b64": base64.b64encode(e).decode()} for e in examples],
        },
    )["predictions"]
    np.testing.assert_allclose([r["scores"] for r in rows], scores, atol=1e-5)


def test_b64_strings_and_columnar_single_output(rest, loaded_text):
    document = {
        "signature_name": "embed",
        "instances": [{"text": {"b64": base64.b64encode(b"le chat").decode()}, "language": "fr"}],
    }
    predictions = rest.request("POST", "/v1/models/tiny:predict", document)["predictions"]
    expected = _direct(loaded_text, sig.EMBED, text_inputs(["le chat"], ["fr"]))["embedding"]
    # One output: row format answers the bare values, columnar the bare tensor.
    np.testing.assert_allclose(predictions, expected, atol=1e-5)
    columnar = rest.request(
        "POST",
        "/v1/models/tiny:predict",
        {"signature_name": "embed", "inputs": {"text": ["le chat"], "language": ["fr"]}},
    )
    np.testing.assert_allclose(columnar["outputs"], expected, atol=1e-5)


def test_status_metadata_and_version_labels(rest, grpc_client):
    expected = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert rest.status() == expected
    assert rest.status(version=1) == expected
    assert rest.status(label="stable") == expected
    metadata = rest.metadata(label="stable")
    assert metadata["model_spec"] == {"name": "tiny", "version": "1", "signature_name": ""}
    signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    assert set(signature_defs["serve_text"]["inputs"]) == {"text", "language"}
    assert signature_defs["classify"]["method_name"] == "tensorflow/serving/classify"

    status = grpc_client.status()
    assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30)]  # 30 = AVAILABLE
    response = grpc_client.metadata()
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    assert sig.FILL_MASK in signature_map.signature_def
    answer = grpc_client.predict_response(text_inputs(["x"], ["en"]), "embed", label="stable")
    assert answer.model_spec.version.value == 1 and answer.model_spec.signature_name == "embed"


def test_errors_are_logged_one_line_each(rest, grpc_client, caplog):
    caplog.set_level(logging.WARNING, logger="absl")
    with pytest.raises(ServerError):
        rest.predict_text("embed", ["x"], ["de"])
    with pytest.raises(ServerError):
        grpc_client.predict_text("embed", ["x"], ["de"])
    rest_lines = [r.getMessage() for r in caplog.records if "REST POST" in r.getMessage()]
    grpc_lines = [r.getMessage() for r in caplog.records if "gRPC Predict" in r.getMessage()]
    assert len(rest_lines) == 1 and len(grpc_lines) == 1
    assert "\n" not in rest_lines[0] and "400 INVALID_ARGUMENT" in rest_lines[0] and "'de'" in rest_lines[0]
    assert "\n" not in grpc_lines[0] and "INVALID_ARGUMENT" in grpc_lines[0] and "'de'" in grpc_lines[0]


def test_binds_loopback_by_default(server):
    from absl import flags

    from serving import server as server_module

    values = flags.FlagValues()
    server_module.define_flags(values)
    values(["tf-metaling-server"])
    assert values.host == "127.0.0.1" and server.host == "127.0.0.1"
    import socket

    for port in (server.rest_port, server.grpc_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_cli_client_prints_the_answer(server, loaded_text, capsys):
    from absl import flags

    from serving import client as client_module

    expected = _direct(loaded_text, sig.EMBED, text_inputs(["habari"], ["sw"]))["embedding"]
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        values = flags.FlagValues()
        client_module.define_flags(values)
        values(
            [
                "tf-metaling-client",
                f"--protocol={protocol}",
                f"--server=127.0.0.1:{port}",
                "--model_name=tiny",
                "--signature=embed",
                "--text=habari",
                "--language=sw",
            ]
        )
        assert client_module.query_from_flags(values) == 0
        answer = json.loads(capsys.readouterr().out)
        np.testing.assert_allclose(answer["embedding"], expected, atol=1e-5)
    values = flags.FlagValues()
    client_module.define_flags(values)
    values(
        [
            "tf-metaling-client",
            f"--server=127.0.0.1:{server.rest_port}",
            "--model_name=tiny",
            "--text=x",
            "--language=de",
        ]
    )
    assert client_module.query_from_flags(values) == 1
    assert "'de'" in json.loads(capsys.readouterr().err)["error"]


def raw_request(port, method, path, body: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_unknown_paths(server):
    status, body = raw_request(server.rest_port, "GET", "/v2/anything")
    assert status == 404 and "error" in json.loads(body)
    status, body = raw_request(server.rest_port, "GET", "/v1/models/tiny:predict")
    assert status == 400 and "Malformed request" in json.loads(body)["error"]
    status, body = raw_request(server.rest_port, "POST", "/v1/models/tiny/versions/x:predict", b"{}")
    assert status == 400 and "Failed to convert version" in json.loads(body)["error"]
    status, body = raw_request(server.rest_port, "POST", "/v1/models/tiny:regress", b"{}")
    assert status == 501
    RestClient(f"127.0.0.1:{server.rest_port}", "tiny").status()
