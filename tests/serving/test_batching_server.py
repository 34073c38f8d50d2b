"""Dynamic batching in the server: concurrent clients are merged and each gets its own answer."""

from __future__ import annotations

import shutil
import threading

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
