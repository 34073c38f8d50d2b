"""Limits against malformed, slow, idle and too many clients: each answered clearly, the server goes on.

JSON depth, Content-Type, UTF-8 and the limits both protocols share (bytes and
examples per request, from the session server's one `RequestLimits`) go to the
session server (the real model); the connection-level limits run on front ends
of their own with short timeouts over a stand-in API (no model needed to hold a
connection open).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from serving.client import GrpcClient, RestClient, ServerError
from serving.grpc_service import GrpcService
from serving.request_limits import RequestLimits
from serving.rest_service import RestService, json_nesting_depth
from tests.serving.conftest import TEXT_MODEL
from tests.serving.test_bad_inputs import _check_valid_request_still_works, _embed_body
from tests.serving.test_server_e2e import raw_request

EMBED = "/v1/models/tiny:predict"
VALID = json.dumps(_embed_body()).encode()


def _error(status_and_body):
    status, body = status_and_body
    document = json.loads(body)
    assert set(document) == {"error"}, document
    return status, document["error"]


def test_json_nesting_depth_counts_brackets_outside_strings():
    assert json_nesting_depth(b'{"a": "[[[[{{", "b": [[1], {"c": "\\"]["}]}') == 3
    assert json_nesting_depth(b"[" * 10000) == 10000
    assert json_nesting_depth(b'"just a string"') == 0


@pytest.mark.parametrize("depth", [65, 10000])
def test_deeply_nested_body_gets_400_naming_the_limit(depth, server, rest, grpc_client, loaded_text):
    status, message = _error(raw_request(server.rest_port, "POST", EMBED, b"[" * depth + b"]" * depth))
    assert status == 400
    assert f"{depth} levels deep" in message and "limit is 64 levels" in message
    # Unbalanced (never closed) nesting is caught the same way, before the parser recurses.
    status, message = _error(raw_request(server.rest_port, "POST", EMBED, b'{"inputs": ' + b"[" * depth))
    assert status == 400 and "limit is 64 levels" in message
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


def test_nesting_within_the_limit_reaches_the_signature_checks(server):
    body = json.dumps({"signature_name": "embed", "inputs": {"text": [[[["x"]]]], "language": ["en"]}}).encode()
    status, message = _error(raw_request(server.rest_port, "POST", EMBED, body))
    assert status == 400 and "levels" not in message


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_non_json_content_type_gets_415(content_type, server, rest, grpc_client, loaded_text):
    for path in (EMBED, "/v1/models/tiny:classify"):
        status, message = _error(
            raw_request(server.rest_port, "POST", path, VALID, headers={"Content-Type": content_type})
        )
        assert status == 415, message
        assert repr(content_type) in message and "JSON" in message
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json"}, {"Content-Type": "Application/JSON; charset=UTF-8"}],
)
def test_json_or_missing_content_type_is_accepted(headers, server):
    status, body = raw_request(server.rest_port, "POST", EMBED, VALID, headers=headers)
    assert status == 200, body
    assert "outputs" in json.loads(body)


def test_content_type_is_not_checked_on_get(server):
    status, body = raw_request(server.rest_port, "GET", "/v1/models/tiny", headers={"Content-Type": "text/plain"})
    assert status == 200, body


def test_invalid_utf8_gets_400(server, rest, grpc_client, loaded_text):
    body = b'{"signature_name": "embed", "inputs": {"text": ["caf\xe9"], "language": ["fr"]}}'
    status, message = _error(raw_request(server.rest_port, "POST", EMBED, body))
    assert status == 400 and "not valid UTF-8" in message
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


# ---------------------------------------------------------------------- connection-level limits
class _StatusApi:
    """Stands in for PredictionApi: a model status, optionally held until `release` is set."""

    def __init__(self):
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Semaphore(0)

    def model_status(self, name, version=None, label=None):
        self.entered.release()
        self.release.wait(30)
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add().version = 1
        return response


@pytest.fixture
def limited_rest():
    service = RestService(
        _StatusApi(), port=0, threads=4, grace_seconds=1,
        limits=RequestLimits(rest_header_timeout_seconds=0.5, rest_body_timeout_seconds=0.5, rest_max_connections=3),
    )
    service.start()
    yield service
    service.stop()


def _closed_by_server(sock, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails if it is still open after `within`)."""
    sock.settimeout(within)
    received = b""
    while True:
        chunk = sock.recv(4096)  # socket.timeout here: the server kept the connection
        if not chunk:
            return received
        received += chunk


def test_incomplete_headers_are_cut_off_even_when_trickling(limited_rest):
    with socket.create_connection(("127.0.0.1", limited_rest.port)) as sock:
        for byte in b"GET /v1/models/x HTTP/1.1\r\n":  # one byte every 0.1 s: 2.7 s > the 0.5 s limit
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        assert _closed_by_server(sock, 10) == b""
    assert raw_request(limited_rest.port, "GET", "/v1/models/x")[0] == 200


def test_idle_connection_is_closed(limited_rest):
    with socket.create_connection(("127.0.0.1", limited_rest.port)) as sock:
        assert _closed_by_server(sock, 10) == b""


def test_slow_body_gets_408(limited_rest):
    with socket.create_connection(("127.0.0.1", limited_rest.port)) as sock:
        sock.sendall(b"POST /v1/models/x:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inputs\"")
        answer = _closed_by_server(sock, 30)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert "did not arrive within this server's limit of 0.5 seconds" in json.loads(body)["error"]


def test_connections_beyond_the_limit_get_503(limited_rest):
    held = [socket.create_connection(("127.0.0.1", limited_rest.port)) for _ in range(3)]
    try:
        time.sleep(0.1)  # let the server register them
        status, message = _error(raw_request(limited_rest.port, "GET", "/v1/models/x"))
        assert status == 503 and "limit of 3 open connections" in message
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while raw_request(limited_rest.port, "GET", "/v1/models/x")[0] != 200:
        assert time.monotonic() < deadline, "the server did not take connections again"
        time.sleep(0.05)


@pytest.fixture
def limited_grpc():
    api = _StatusApi()
    service = GrpcService(
        api, port=0, threads=4, grace_seconds=1,
        limits=RequestLimits(grpc_max_concurrent_rpcs=1, grpc_handshake_timeout_seconds=0.5),
    )
    service.start()
    yield service, api
    service.stop()


def _status_call(port, timeout=30):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "x"
        return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=timeout)


def test_grpc_calls_beyond_the_limit_get_resource_exhausted(limited_grpc):
    service, api = limited_grpc
    api.release.clear()
    first = threading.Thread(target=_status_call, args=(service.port,))
    first.start()
    try:
        assert api.entered.acquire(timeout=30)
        with pytest.raises(grpc.RpcError) as raised:
            _status_call(service.port)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        api.release.set()
        first.join()
    assert _status_call(service.port).model_version_status[0].version == 1


def test_grpc_connection_without_handshake_is_closed(limited_grpc):
    service, _ = limited_grpc
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n")  # a truncated connection preface, then silence
        _closed_by_server(sock, 10)
    assert _status_call(service.port).model_version_status[0].version == 1


def test_grpc_options_are_core_channel_arguments():
    options = dict(
        GrpcService(None, limits=RequestLimits(
            grpc_keepalive_time_seconds=30, grpc_max_concurrent_streams=7, grpc_handshake_timeout_seconds=2
        )).channel_options()
    )
    assert options["grpc.keepalive_time_ms"] == 30000
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.server_handshake_timeout_ms"] == 2000
    with pytest.raises(ValueError, match="max_connections"):
        RestService(None, limits=RequestLimits(rest_max_connections=0))


def test_limit_flags_reach_both_front_ends(tmp_path):
    from absl import flags

    from serving import server as server_module

    values = flags.FlagValues()
    server_module.define_flags(values)
    values(["tf-metaling-server", f"--model_base_path={tmp_path}"])
    defaults = server_module.server_from_flags(values)
    assert (defaults._rest.header_timeout_seconds, defaults._rest.max_connections) == (10.0, 512)
    assert (defaults._grpc.max_concurrent_rpcs, defaults._grpc.handshake_timeout_seconds) == (256, 10.0)
    values = flags.FlagValues()
    server_module.define_flags(values)
    values([
        "tf-metaling-server", f"--model_base_path={tmp_path}", "--max_json_depth=9",
        "--rest_header_timeout_seconds=3", "--rest_body_timeout_seconds=4", "--rest_max_connections=7",
        "--grpc_max_concurrent_rpcs=5", "--grpc_max_concurrent_streams=6", "--grpc_keepalive_time_seconds=8",
        "--grpc_keepalive_timeout_seconds=2", "--grpc_max_connection_idle_seconds=30",
        "--grpc_handshake_timeout_seconds=1.5",
    ])
    configured = server_module.server_from_flags(values)
    rest, grpc_service = configured._rest, configured._grpc
    assert (rest.max_json_depth, rest.header_timeout_seconds, rest.body_timeout_seconds, rest.max_connections) == (
        9, 3.0, 4.0, 7
    )
    assert dict(grpc_service.channel_options())["grpc.max_concurrent_streams"] == 6
    assert (
        grpc_service.max_concurrent_rpcs,
        grpc_service.keepalive_time_seconds,
        grpc_service.keepalive_timeout_seconds,
        grpc_service.max_connection_idle_seconds,
        grpc_service.handshake_timeout_seconds,
    ) == (5, 8.0, 2.0, 30.0, 1.5)


# ---------------------------------------------------------------------- one RequestLimits for REST and gRPC
def _rest_and_grpc_errors(server, texts) -> tuple:
    """The REST and the gRPC error answers to the same `embed` request."""
    errors = []
    for client in (
        RestClient(f"127.0.0.1:{server.rest_port}", TEXT_MODEL),
        GrpcClient(f"127.0.0.1:{server.grpc_port}", TEXT_MODEL),
    ):
        try:
            with pytest.raises(ServerError) as raised:
                client.predict_text("embed", texts, "en")
        finally:
            client.close()
        errors.append(raised.value)
    return tuple(errors)


def test_rest_and_grpc_reject_the_same_oversize_request_at_the_same_limit(server, rest, grpc_client, loaded_text):
    limits = server.limits
    rest_error, grpc_error = _rest_and_grpc_errors(server, ["x" * limits.max_request_bytes])
    assert rest_error.status == 413
    assert rest_error.message.endswith(
        f"bytes is over this server's limit of {limits.max_request_bytes} bytes per request (max_request_bytes)."
    )
    # gRPC core enforces the message size before Python sees the message, in its own words.
    assert grpc_error.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_error.message.startswith("SERVER: Received message larger than max (")
    assert grpc_error.message.endswith(f" vs. {limits.max_request_bytes})")
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


def test_rest_and_grpc_reject_too_many_examples_with_the_same_words(server, rest, grpc_client, loaded_text):
    limits = server.limits
    size = limits.max_request_batch_size + 1
    rest_error, grpc_error = _rest_and_grpc_errors(server, ["x"] * size)
    assert (rest_error.status, grpc_error.status) == (400, grpc.StatusCode.INVALID_ARGUMENT)
    expected = (
        f"Batch of {size} examples is over this server's limit of {limits.max_request_batch_size} "
        "examples per request (max_request_batch_size)."
    )
    assert rest_error.message == grpc_error.message == expected
    _check_valid_request_still_works(rest, grpc_client, loaded_text)


LIMIT_FIELDS = [field.name for field in dataclasses.fields(RequestLimits)]


@pytest.mark.parametrize("name", LIMIT_FIELDS)
@pytest.mark.parametrize("value", [0, -1, "8", True, None])
def test_invalid_limit_raises_naming_the_field(name, value):
    with pytest.raises(ValueError, match=rf"^RequestLimits\.{name}={value!r}: expected a positive"):
        RequestLimits(**{name: value})


def test_limit_types():
    with pytest.raises(ValueError, match=r"RequestLimits\.max_request_batch_size=1\.5: expected a positive integer"):
        RequestLimits(max_request_batch_size=1.5)
    limits = RequestLimits(rest_body_timeout_seconds=2)
    assert limits.rest_body_timeout_seconds == 2.0 and isinstance(limits.rest_body_timeout_seconds, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_request_bytes = 1


def test_every_limit_is_a_flag_with_the_fields_default():
    from absl import flags

    from serving import request_limits

    values = flags.FlagValues()
    request_limits.define_flags(values)
    values(["tf-metaling-server", "--max_request_bytes=1000", "--rest_body_timeout_seconds=2.5"])
    for field in dataclasses.fields(RequestLimits):
        assert (values[field.name].default, values[field.name].help) == (field.default, field.metadata["meaning"])
    assert request_limits.from_flags(values) == RequestLimits(max_request_bytes=1000, rest_body_timeout_seconds=2.5)
