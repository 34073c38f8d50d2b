"""Dynamic batching: concurrent requests merge, answers split back, one bad request fails alone."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from serving.batcher import BatchingOptions, DynamicBatcher
from serving.errors import ServingError


class RecordingModel:
    """Doubles its input; fails a whole batch holding a negative value (like an in-graph check)."""

    def __init__(self):
        self.batch_sizes = []
        self.lock = threading.Lock()

    def __call__(self, inputs):
        x = inputs["x"]
        with self.lock:
            self.batch_sizes.append(len(x))
        if (x < 0).any():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative input")
        return {"y": x * 2, "total": np.full(len(x), x.sum())}


def _submit_all(batcher, requests):
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def send(index):
        barrier.wait()
        try:
            results[index] = batcher.submit(requests[index])
        except ServingError as error:
            results[index] = error

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_requests_are_merged_and_split_back():
    model = RecordingModel()
    batcher = DynamicBatcher(model, BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000))
    requests = [{"x": np.asarray([[i, i + 1]], np.float32)} for i in range(8)]
    results = _submit_all(batcher, requests)
    batcher.stop()
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result["y"], request["x"] * 2)
    assert sum(model.batch_sizes) == 8 and max(model.batch_sizes) > 1
    assert batcher.batches_formed >= 1 and batcher.requests_batched > batcher.batches_formed


def test_batches_respect_the_maximum_size():
    model = RecordingModel()
    batcher = DynamicBatcher(model, BatchingOptions(max_batch_size=3, batch_timeout_micros=200_000))
    results = _submit_all(batcher, [{"x": np.asarray([[float(i)]])} for i in range(7)])
    batcher.stop()
    assert all(size <= 3 for size in model.batch_sizes) and sum(model.batch_sizes) == 7
    assert [float(r["y"][0, 0]) for r in results] == [2.0 * i for i in range(7)]


def test_a_bad_request_fails_alone():
    model = RecordingModel()
    batcher = DynamicBatcher(model, BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000))
    requests = [{"x": np.asarray([[1.0 if i != 2 else -1.0]])} for i in range(5)]
    results = _submit_all(batcher, requests)
    batcher.stop()
    assert isinstance(results[2], ServingError) and results[2].message == "negative input"
    assert batcher.batches_split >= 1
    for i in (0, 1, 3, 4):
        np.testing.assert_array_equal(results[i]["y"], [[2.0]])
        np.testing.assert_array_equal(results[i]["total"], [1.0])  # computed without the bad request


def test_different_shapes_are_not_merged():
    model = RecordingModel()
    batcher = DynamicBatcher(model, BatchingOptions(max_batch_size=8, batch_timeout_micros=100_000))
    requests = [{"x": np.ones((1, 2 + i % 2), np.float32)} for i in range(6)]
    results = _submit_all(batcher, requests)
    batcher.stop()
    for request, result in zip(requests, results):
        assert result["y"].shape == request["x"].shape
    assert sum(model.batch_sizes) == 6


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingOptions(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_timeout_micros"):
        BatchingOptions(batch_timeout_micros=-1)
