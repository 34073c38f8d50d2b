"""The short form of `benchmarks/faults.py`: every in-process fault for a second or two, under valid load.

The full suite (real server process, export killed with SIGKILL, SIGTERM, larger
counts, figures) is `python benchmarks/faults.py`; this form checks the same
outcomes on the session's tiny text model: no valid request fails or gets a
wrong answer, garbage never gets a 500, malformed requests get their 4xx, a
burst is answered (never hangs), corrupt versions never become AVAILABLE.
"""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks import faults
from serving.batcher import BatchingOptions
from serving.model_manager import AVAILABLE, END, ModelConfig, ModelManager
from serving.request_limits import RequestLimits
from serving.server import ModelServer
from tests.serving import fixtures
from tests.serving.conftest import TEXT_MODEL

MAX_REQUEST_BYTES = 64 * 1024


@pytest.mark.slow
def test_faults_short_form(text_export, tmp_path):
    base = tmp_path / "exports" / TEXT_MODEL
    shutil.copytree(text_export, base / "1")
    requests = [(text, code) for code, texts in sorted(fixtures.TEXTS.items()) for text in texts]
    table = faults.direct_embeddings(text_export, requests)
    server = ModelServer(
        [ModelConfig(TEXT_MODEL, str(base))],
        grpc_port=0,
        rest_port=0,
        poll_seconds=0.1,
        batching=BatchingOptions(max_batch_size=4, max_enqueued_batches=2),
        limits=RequestLimits(
            max_request_bytes=MAX_REQUEST_BYTES, rest_header_timeout_seconds=0.5, grpc_handshake_timeout_seconds=0.5
        ),
    ).start()
    target = faults.Target(server.rest_port, server.grpc_port, str(base), TEXT_MODEL)
    # The hot swap's good version is a copy of the same export: same answers as version 1.
    load = faults.ValidLoad(target, requests, {1: table, 5: table}, rest_clients=1, grpc_clients=1).start()
    results = {}
    try:
        faults.run_phase("baseline", load, target, None, results, 1.0)
        faults.run_phase("slowloris", load, target, lambda: faults.slowloris(target, 10, 0.2, 2.0), results)
        faults.run_phase("flood REST", load, target, lambda: faults.flood(target, "REST", 1.0, 100, 100), results)
        faults.run_phase("flood gRPC", load, target, lambda: faults.flood(target, "gRPC", 1.0, 100, 100), results)
        faults.run_phase(
            "malformed requests", load, target,
            lambda: faults.malformed(target, 1.0, MAX_REQUEST_BYTES, 64, requests[0][0]), results,
        )
        faults.run_phase(
            "burst", load, target, lambda: faults.burst(target, requests, lambda rows: [table[rows]], 8, 4), results
        )
        faults.run_phase(
            "hot swap", load, target,
            lambda: faults.hot_swap(target, text_export, text_export, 2, str(tmp_path)), results,
        )
    finally:
        load.stop()
        server.stop()
    checks = faults.finish(results, load, memory_bound_mb=float("inf"))

    assert checks["all_valid_requests"]["sent"] > 0
    assert checks["no_failed_valid_requests"], [r["valid"]["problems"] for r in results.values()]
    assert checks["no_mismatched_valid_requests"], [r["valid"]["problems"] for r in results.values()]
    assert checks["no_500_answers_to_garbage"]
    for protocol in ("REST", "gRPC"):
        assert results["slowloris"]["fault"][protocol]["cut by the server"] > 0, results["slowloris"]["fault"]
    malformed = results["malformed requests"]["fault"]
    assert malformed["wrong_answers"] == 0, malformed["wrong_examples"]
    assert len(malformed["answers"]) == 11
    burst = results["burst"]["fault"]
    assert burst["hung"] == 0 and burst["mismatched"] == 0
    assert set(burst["answers"]) <= {"REST OK", "REST 429", "gRPC OK", "gRPC RESOURCE_EXHAUSTED"}, burst
    swap = results["hot swap"]["fault"]
    reasons = {kind: details["reason"] for kind, details in swap["corrupt"].items()}
    assert not any(details["ever_available"] for details in swap["corrupt"].values())
    assert str(base / "2") in reasons["truncated variables"]
    assert "no saved_model.pb" in reasons["no saved_model.pb"]
    assert "no string 'language' input" in reasons["no language input"]
    assert swap["good_took_over"] and swap["final_states"] == {"1": END, "2": END, "3": END, "4": END, "5": AVAILABLE}


def test_corrupt_newest_version_falls_back_and_is_retried_once_repaired(ids_export, tmp_path):
    base = tmp_path / "ids"
    shutil.copytree(ids_export, base / "1")
    faults.corrupt_missing_saved_model(ids_export, str(base / "2"))
    faults.corrupt_without_language(ids_export, str(base / "3"), signature="serving_default")
    manager = ModelManager([ModelConfig("ids", str(base))], poll_seconds=0)
    manager.start()
    try:
        status = {version: (state, error) for version, state, error in manager.status("ids")}
        assert status[1] == (AVAILABLE, None)  # the newest good version serves at once
        assert status[2][0] == END and "has no saved_model.pb" in status[2][1]
        assert status[3][0] == END and "signature 'serving_default' has no string 'language' input" in status[3][1]
        manager.poll()  # unchanged directories are not tried again
        assert {v: s for v, s, _ in manager.status("ids")} == {1: AVAILABLE, 2: END, 3: END}
        shutil.rmtree(base / "3")
        shutil.copy(os.path.join(ids_export, "saved_model.pb"), base / "2")  # repaired: tried again
        manager.poll()
        assert manager.wait_for_version("ids", 2, timeout=30)
        assert [e for _, _, e in manager.status("ids", 2)] == [None]
    finally:
        manager.stop()
