"""A new version appears under a stream of REST and gRPC requests: zero failures, clean switch."""

from __future__ import annotations

import os
import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from serving.client import GrpcClient, RestClient
from serving.export import export_model
from serving.model_manager import AVAILABLE, END, ModelConfig
from serving.server import ModelServer
from tests.helpers import tiny_model
from tests.serving import fixtures


@pytest.mark.slow
def test_hot_swap_under_a_stream_of_requests(ids_export, loaded_ids, tmp_path):
    base = tmp_path / "swap"
    shutil.copytree(ids_export, base / "1")
    batch = fixtures.id_batch(("en", "sw", "fr"))
    expected_v1 = loaded_ids.signatures["embed"](**{k: tf.constant(v) for k, v in batch.items()})["embedding"].numpy()
    new_model = tiny_model(seed=7)
    direct_v2 = new_model(
        {
            "token_ids": tf.constant(batch["token_ids"]),
            "padding_mask": tf.constant(batch["padding_mask"]),
            "language_ids": tf.constant([0, 2, 1]),
        },
        outputs=["embedding"],
    )["embedding"].numpy()
    assert np.abs(direct_v2 - expected_v1).max() > 1e-2  # the versions are distinguishable

    # Version 2 is exported beside the watched base path first; moving it in is the
    # same atomic rename the exporter ends with, and leaves the 2 cores to the stream.
    staged = export_model(new_model, str(tmp_path / "staging"), "swap", 2)
    server = ModelServer([ModelConfig("swap", str(base))], grpc_port=0, rest_port=0, poll_seconds=0.1).start()
    stop = threading.Event()
    answers = {"rest": [], "grpc": []}
    failures = []

    def stream(kind):
        if kind == "rest":
            client = RestClient(f"127.0.0.1:{server.rest_port}", "swap")
        else:
            client = GrpcClient(f"127.0.0.1:{server.grpc_port}", "swap")
        try:
            while not stop.is_set():
                try:
                    if kind == "rest":
                        embedding = np.asarray(client.predict(batch, "embed")["embedding"])
                        version = None
                    else:
                        response = client.predict_response(batch, "embed")
                        embedding = tf.make_ndarray(response.outputs["embedding"])
                        version = response.model_spec.version.value
                    answers[kind].append((version, embedding))
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    failures.append(f"{kind}: {error}")
                time.sleep(0.005)  # a steady stream that leaves the 2 cores room to export and load
        finally:
            client.close()

    threads = [threading.Thread(target=stream, args=(kind,)) for kind in answers]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        os.rename(staged, base / "2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = {v: s for v, s, _ in server.manager.status("swap")}
            if states.get(1) == END and states.get(2) == AVAILABLE:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # keep streaming after the switch
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()

    assert failures == []
    assert states == {1: END, 2: AVAILABLE}
    for kind, kind_answers in answers.items():
        served = []
        for version, embedding in kind_answers:
            if np.allclose(embedding, expected_v1, atol=1e-5):
                served.append(1)
            else:
                np.testing.assert_allclose(embedding, direct_v2, atol=1e-5)
                served.append(2)
            if version is not None:
                assert version == served[-1]
        assert served.count(1) > 0 and served.count(2) > 0, kind
        # One client per protocol: it saw the old version, then only the new one.
        assert served == sorted(served), kind
    assert sorted(os.listdir(base)) == ["1", "2"]
