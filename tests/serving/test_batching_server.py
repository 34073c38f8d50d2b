"""Dynamic batching in the server: concurrent clients are merged and each gets its own answer."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving.batcher import BatchingOptions
from serving.client import GrpcClient, RestClient, ServerError
from serving.model_manager import ModelConfig
from serving.server import ModelServer
from tests.serving import fixtures


def test_concurrent_requests_are_batched_and_answered_individually(ids_export, loaded_ids, tmp_path):
    shutil.copytree(ids_export, tmp_path / "ids" / "1")
    server = ModelServer(
        [ModelConfig("ids", str(tmp_path / "ids"))],
        grpc_port=0,
        rest_port=0,
        poll_seconds=0,
        batching=BatchingOptions(max_batch_size=16, batch_timeout_micros=300_000),
    ).start()
    languages = ["en", "fr", "sw"]
    requests = [fixtures.id_batch((languages[i % 3],), seed=i) for i in range(12)]
    bad = dict(requests[0], token_ids=requests[0]["token_ids"] + 1000)  # out of range: an in-graph error
    results = [None] * 13
    barrier = threading.Barrier(13)

    def send(index):
        if index % 2:
            client = RestClient(f"127.0.0.1:{server.rest_port}", "ids")
        else:
            client = GrpcClient(f"127.0.0.1:{server.grpc_port}", "ids")
        barrier.wait()
        try:
            results[index] = client.predict(requests[index] if index < 12 else bad, "embed")
        except ServerError as error:
            results[index] = error
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(13)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with server.manager.servable("ids") as servable:
            batcher = servable._batchers["embed"]
            batches, batched, split = batcher.batches_formed, batcher.requests_batched, batcher.batches_split
    finally:
        server.stop()
    for index in range(12):
        expected = loaded_ids.signatures["embed"](**{k: tf.constant(v) for k, v in requests[index].items()})
        np.testing.assert_allclose(results[index]["embedding"], expected["embedding"].numpy(), atol=1e-5)
    assert isinstance(results[12], ServerError) and "must lie in" in results[12].message
    assert results[12].status in (400, grpc.StatusCode.INVALID_ARGUMENT)
    assert batches >= 1 and batched > batches  # requests really were merged
    assert split <= batches  # a batch holding the bad request was rerun request by request


@pytest.mark.parametrize("field, value", [("max_batch_size", 0), ("num_batch_threads", 0)])
def test_bad_batching_options(field, value):
    with pytest.raises(ValueError, match=field):
        BatchingOptions(**{field: value})


def test_stop_lets_in_flight_requests_finish(ids_export, loaded_ids, tmp_path):
    """A request still waiting in the batcher when shutdown starts gets its answer."""
    shutil.copytree(ids_export, tmp_path / "ids" / "1")
    server = ModelServer(
        [ModelConfig("ids", str(tmp_path / "ids"))],
        grpc_port=0,
        rest_port=0,
        poll_seconds=0,
        batching=BatchingOptions(max_batch_size=16, batch_timeout_micros=1_500_000),
    ).start()
    request = fixtures.id_batch(("sw",))
    results = {}

    def send(kind):
        if kind == "rest":
            client = RestClient(f"127.0.0.1:{server.rest_port}", "ids")
        else:
            client = GrpcClient(f"127.0.0.1:{server.grpc_port}", "ids")
        try:
            # serving_default has two outputs: the REST answer names them, no metadata lookup needed.
            results[kind] = client.predict(request)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results[kind] = error
        finally:
            client.close()

    senders = [threading.Thread(target=send, args=(kind,)) for kind in ("rest", "grpc")]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 30
    while server.manager._entries["ids"][1].in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # until both requests hold the version
    server.stop()  # while both requests wait for their batch to fill
    for sender in senders:
        sender.join()
    expected = loaded_ids.signatures["serving_default"](**{k: tf.constant(v) for k, v in request.items()})["embedding"]
    for kind in ("rest", "grpc"):
        assert not isinstance(results[kind], Exception), results[kind]
        np.testing.assert_allclose(results[kind]["embedding"], expected.numpy(), atol=1e-5)
    assert server.manager.status("ids") == [(1, "END", None)]
