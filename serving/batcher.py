"""Dynamic batching: concurrent requests to one signature run as one batch.

Each request waits at most `batch_timeout_micros` for others to join it; a batch
is closed when it reaches `max_batch_size` examples or the wait runs out, and is
run by one of `num_batch_threads` threads. Requests are merged only when every
input has the same dtype and the same non-batch shape (TF Serving pads
variable-length inputs instead; this server never changes a request's inputs).

A merged batch that fails (say one request names an unknown language, which an
in-graph check rejects for the whole batch) is rerun request by request, so
only the request at fault receives the error.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np

from serving.errors import ServingError


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters (same names as its batching_parameters_file)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 1
    max_enqueued_batches: int = 64

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 0 if field.name == "batch_timeout_micros" else 1
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"BatchingOptions.{field.name}={value!r}: expected an int >= {minimum}.")


class _Task:
    __slots__ = ("done", "enqueued", "error", "inputs", "key", "outputs", "size")

    def __init__(self, inputs: dict, size: int, key):
        self.inputs = inputs
        self.size = size
        self.key = key
        self.done = threading.Event()
        self.outputs = None
        self.error = None
        self.enqueued = time.monotonic()


class DynamicBatcher:
    """Merges concurrent `submit` calls into batches run by `execute`.

    Args:
        execute: runs one batch: ``{input: array [N, ...]} -> {output: array [N, ...]}``
            (raises `ServingError` on a bad batch).
        options: `BatchingOptions`.
        name: used in thread names.
    """

    def __init__(self, execute: Callable[[dict], dict], options: BatchingOptions, name: str = "batcher"):
        self.execute = execute
        self.options = options
        self._queue: collections.deque = collections.deque()
        self._condition = threading.Condition()
        self._stopped = False
        # Counters for monitoring and tests: batches of several requests formed,
        # the requests in them, and batches rerun request by request after a failure.
        self.batches_formed = 0
        self.requests_batched = 0
        self.batches_split = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: dict) -> dict:
        """Runs `inputs` (all with the same batch size) as part of a batch; returns its outputs."""
        sizes = {int(value.shape[0]) for value in inputs.values()}
        if len(sizes) != 1:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Batched inputs must share their batch size.")
        key = tuple(sorted((name, value.dtype.str, value.shape[1:]) for name, value in inputs.items()))
        task = _Task(inputs, sizes.pop(), key)
        with self._condition:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The model version is being unloaded.")
            limit = self.options.max_enqueued_batches * self.options.max_batch_size
            if sum(queued.size for queued in self._queue) + task.size > limit:
                raise ServingError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"The batch queue is full ({self.options.max_enqueued_batches} batches); retry later.",
                )
            self._queue.append(task)
            self._condition.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self):
        """Finishes the queued requests, then stops the threads."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    # ------------------------------------------------------------------ workers
    def _work(self):
        while True:
            tasks = self._next_batch()
            if tasks is None:
                return
            self._run(tasks)

    def _next_batch(self):
        timeout = self.options.batch_timeout_micros / 1e6
        with self._condition:
            while True:
                if not self._queue:
                    if self._stopped:
                        return None
                    self._condition.wait()
                    continue
                first = self._queue[0]
                compatible = sum(task.size for task in self._queue if task.key == first.key)
                remaining = first.enqueued + timeout - time.monotonic()
                if compatible >= self.options.max_batch_size or remaining <= 0 or self._stopped:
                    break
                self._condition.wait(remaining)
            first = self._queue[0]
            tasks, total, kept = [], 0, collections.deque()
            while self._queue:
                task = self._queue.popleft()
                fits = total + task.size <= self.options.max_batch_size or not tasks
                if task.key == first.key and fits and total < self.options.max_batch_size:
                    tasks.append(task)
                    total += task.size
                else:
                    kept.append(task)
            self._queue = kept
            if self._queue:
                self._condition.notify_all()
            return tasks

    def _run(self, tasks):
        if len(tasks) == 1:
            self._run_alone(tasks[0])
            return
        with self._condition:
            self.batches_formed += 1
            self.requests_batched += len(tasks)
        merged = {name: np.concatenate([task.inputs[name] for task in tasks]) for name in tasks[0].inputs}
        total = sum(task.size for task in tasks)
        try:
            outputs = self.execute(merged)
            if any(np.ndim(value) == 0 or np.shape(value)[0] != total for value in outputs.values()):
                raise ServingError(grpc.StatusCode.INTERNAL, "an output is not batched along dimension 0")
        except Exception:  # noqa: BLE001 - one bad request must not fail the others: rerun each alone
            with self._condition:
                self.batches_split += 1
            for task in tasks:
                self._run_alone(task)
            return
        offset = 0
        for task in tasks:
            task.outputs = {name: value[offset : offset + task.size] for name, value in outputs.items()}
            offset += task.size
            task.done.set()

    def _run_alone(self, task):
        try:
            task.outputs = self.execute(task.inputs)
        except Exception as error:  # noqa: BLE001 - handed to the waiting request
            task.error = error
        task.done.set()
