"""Serving under faults and abuse: what well-behaved clients see while others misbehave.

Starts the real server (`tf-metaling-server` in a subprocess on 127.0.0.1,
dynamic batching with a small queue) on an exported text model (d=64, 2 layers,
6 languages, adapters). Throughout, `--rest_clients` + `--grpc_clients`
well-behaved clients send valid ``embed`` requests (one text + language each)
and check every answer against a direct in-process call of the same SavedModel
version (gRPC answers name their version; a REST answer must match a good
version). A client that is told to retry later (429 / 503 / RESOURCE_EXHAUSTED
/ UNAVAILABLE) backs off and retries, as TF Serving's clients should; a request
counts as failed if it still has no answer after its retries, and as
mismatched if its answer differs from the direct call (atol 1e-4). Each fault
runs in turn, on loopback only, bounded in count and time:

- baseline: no fault (twice: at the start and after the floods);
- slowloris: hundreds of connections (half per port) each sending one byte of a
  never-ending request every few seconds, reconnecting when cut;
- floods of garbage on each port (`--flood_rate` connections per second): random bytes, truncated HTTP requests
  (line, headers, body), a bad header, an HTTP/2 preface on the REST port;
  random bytes, truncated HTTP/2 frames and HTTP/1.1 on the gRPC port;
- malformed requests: oversize and deeply nested bodies, wrong Content-Type,
  invalid UTF-8, unknown language codes, valid and invalid rows mixed in one
  batch (REST and gRPC); each answer must be its 4xx / status code naming the
  problem, never a 500;
- a burst of concurrent many-text requests beyond the batch queue: each must
  be answered (200, or 429 / RESOURCE_EXHAUSTED), none may hang;
- hot swap: version directories corrupt in three ways (truncated variables,
  no saved_model.pb, a signature without the ``language`` input) appear one
  after the other, then a good version with other weights: the corrupt ones
  must never become AVAILABLE and their status must say why; the good one
  takes over;
- `serving/export.py` killed with SIGKILL at random points (one complete
  export first, to time it): no partially written version may ever appear;
- SIGTERM while under load (plus two 12-text requests sent just before): the
  requests in flight must finish, the server must exit within its grace period.

Per fault: valid requests sent / failed / mismatched / retried, p50 and p99
latency of the valid requests against the no-fault baseline of the same run,
and the server's resident memory before and after. Bounds checked: p99 under
slowloris and floods within 3x the baseline p99; memory growth within
`--memory_bound_mb` over every fault that loads no model version.

    python benchmarks/faults.py                  # about 5 minutes on 2 shared cores
    python benchmarks/faults.py --seconds 4 --slowloris 100   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import dataclasses
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import psutil
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.results_file import RESULTS_DIR, machine_info, write_results
from benchmarks.serving import generated_texts, start_server, stop_server
from serving.batcher import BatchingOptions
from serving.client import GrpcClient, RestClient, ServerError, text_inputs

MODEL = "bench"
SIGNATURE = "embed"
LANGUAGES = ["en", "ar", "fr", "ru", "hi", "sw"]
ATOL = 1e-4
RETRY_HTTP = (429, 503)
RETRY_GRPC = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
# Faults that load model versions (their memory is the new version's, not a leak).
LOADING_FAULTS = ("hot swap", "export SIGKILL")


# ---------------------------------------------------------------------- model and versions
def build_model(tokenizer, seed: int):
    import keras

    from tf_metaling.models import MultilingualEncoder, MultilingualModel

    keras.utils.set_random_seed(seed)
    encoder = MultilingualEncoder(
        vocabulary_size=tokenizer.vocab_size,
        languages=LANGUAGES,
        hidden_dim=64,
        num_layers=2,
        num_heads=2,
        intermediate_dim=128,
        max_sequence_length=32,
        language_specific="adapter",
        adapter_dim=16,
        dropout=0.0,
        attention_dropout=0.0,
    )
    return MultilingualModel(encoder)


def save_model_dir(model, tokenizer, model_dir: str) -> str:
    """A trainer-style model_dir (model.json, a checkpoint, vocab.txt) for `serving/export.py`."""
    from tf_metaling import checkpoints

    os.makedirs(model_dir, exist_ok=True)
    checkpoints.save_model_config(model, model_dir)
    tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "ckpt"))
    tokenizer.save(os.path.join(model_dir, tokenizer.file_name))
    return model_dir


def corrupt_truncated_variables(source: str, target: str) -> str:
    """A copy of a version directory whose variables data file is cut in half."""
    shutil.copytree(source, target)
    variables = os.path.join(target, "variables")
    data = sorted(name for name in os.listdir(variables) if ".data-" in name)[0]
    path = os.path.join(variables, data)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    return target


def corrupt_missing_saved_model(source: str, target: str) -> str:
    """A copy of a version directory without saved_model.pb."""
    shutil.copytree(source, target)
    os.remove(os.path.join(target, "saved_model.pb"))
    return target


def corrupt_without_language(source: str, target: str, signature: str = SIGNATURE) -> str:
    """A copy of a version directory whose `signature` no longer declares the ``language`` input."""
    from serving import op_check

    shutil.copytree(source, target)
    proto = op_check.read_saved_model(target)
    for meta_graph in proto.meta_graphs:
        del meta_graph.signature_def[signature].inputs["language"]
    with open(os.path.join(target, "saved_model.pb"), "wb") as file:
        file.write(proto.SerializeToString())
    return target


CORRUPTIONS = {
    "truncated variables": corrupt_truncated_variables,
    "no saved_model.pb": corrupt_missing_saved_model,
    "no language input": corrupt_without_language,
}


def direct_embeddings(export_dir: str, requests: list) -> np.ndarray:
    """The ``embed`` outputs of a direct in-process call, one row per (text, language) request."""
    import tensorflow_text  # noqa: F401 - registers the tokenizer's ops

    function = tf.saved_model.load(export_dir).signatures[SIGNATURE]
    rows = [
        function(**{key: tf.constant(value) for key, value in text_inputs([text], [code]).items()})["embedding"]
        for text, code in requests
    ]
    return np.concatenate([row.numpy() for row in rows])


# ---------------------------------------------------------------------- the server under test
@dataclasses.dataclass
class Target:
    """A running server: ports, the watched base path and the process (None: in this process)."""

    rest_port: int
    grpc_port: int
    base_path: str
    model_name: str = MODEL
    process: subprocess.Popen | None = None
    log_path: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else os.getpid()

    def rss_mb(self) -> float | None:
        try:
            return round(psutil.Process(self.pid).memory_info().rss / 2**20, 1)
        except psutil.Error:
            return None

    def status(self) -> dict:
        """``{version: (state, error message)}`` from GET /v1/models/NAME."""
        client = RestClient(f"127.0.0.1:{self.rest_port}", self.model_name, timeout=10)
        try:
            answer = client.status()
        finally:
            client.close()
        return {
            int(entry["version"]): (entry["state"], entry.get("status", {}).get("error_message", ""))
            for entry in answer["model_version_status"]
        }


# ---------------------------------------------------------------------- well-behaved clients
class ValidLoad:
    """Well-behaved REST and gRPC clients sending valid requests until stopped; every answer checked.

    Args:
        target: the `Target`.
        requests: ``[(text, language)]`` the clients cycle through.
        expected: ``version -> [len(requests), d] array`` of direct-call embeddings; gRPC answers
            must match their version's row, REST answers some good version's row.
        rest_clients, grpc_clients: clients per protocol (one thread and connection each).
        pause: seconds between a client's requests.
        retries: retries after a 429 / RESOURCE_EXHAUSTED (exponential backoff from 50 ms).
    """

    def __init__(self, target, requests, expected, rest_clients=3, grpc_clients=3, pause=0.01, retries=7):
        self.target = target
        self.requests = requests
        self.expected = expected
        self.rest_clients = rest_clients
        self.grpc_clients = grpc_clients
        self.pause = pause
        self.retries = retries
        self.phase = "warmup"
        self.signal_time = None  # set when the server is told to shut down
        self.records = []  # (phase, protocol, start, end, outcome, retried, detail)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        specs = [("REST", i) for i in range(self.rest_clients)] + [("gRPC", i) for i in range(self.grpc_clients)]
        self._threads = [threading.Thread(target=self._run, args=spec, daemon=True) for spec in specs]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _run(self, protocol, number):
        address = f"127.0.0.1:{self.target.rest_port if protocol == 'REST' else self.target.grpc_port}"
        client = (RestClient if protocol == "REST" else GrpcClient)(address, self.target.model_name, timeout=60)
        path = f"/v1/models/{self.target.model_name}:predict"
        prepared = []
        for text, code in self.requests:
            if protocol == "REST":
                document = {"signature_name": SIGNATURE, "inputs": {"text": [text], "language": [code]}}
                prepared.append(json.dumps(document).encode("utf-8"))
            else:
                prepared.append(client.predict_request(text_inputs([text], [code]), SIGNATURE))
        index = number * 7
        try:
            while not self._stop.is_set():
                index = (index + 1) % len(prepared)
                phase, start = self.phase, time.perf_counter()
                outcome, retried, detail = self._send(client, protocol, path, prepared[index], index, start)
                with self._lock:
                    self.records.append((phase, protocol, start, time.perf_counter(), outcome, retried, detail))
                if outcome == "refused":
                    self._stop.wait(0.2)
                time.sleep(self.pause)
        finally:
            client.close()

    def _send(self, client, protocol, path, request, index, start):
        retried = 0
        for attempt in range(self.retries + 1):
            try:
                if protocol == "REST":
                    embedding = np.asarray(client.request("POST", path, request)["outputs"], np.float32)
                    version = None
                else:
                    response = client.send(request)
                    embedding = tf.make_ndarray(response.outputs["embedding"])
                    version = response.model_spec.version.value
                outcome = self._check(embedding, version, index)
                return outcome, retried, None if outcome == "ok" else f"version {version}"
            except ServerError as error:
                if self._after_signal(start):
                    return "refused", retried, str(error)
                if error.status in RETRY_HTTP + RETRY_GRPC and attempt < self.retries:
                    retried += 1
                    time.sleep(0.05 * 2**attempt)
                    continue
                return "failed", retried, f"{error.status}: {error.message[:200]}"
            except (OSError, http.client.HTTPException) as error:
                if self._after_signal(start):
                    return "refused", retried, repr(error)
                return "failed", retried, repr(error)[:200]
        return "failed", retried, "retries exhausted"

    def _check(self, embedding, version, index) -> str:
        candidates = [version] if version is not None else list(self.expected)
        for candidate in candidates:
            table = self.expected.get(candidate)
            if table is None:
                continue
            row = table[index : index + 1]
            if embedding.shape == row.shape and np.allclose(embedding, row, atol=ATOL, rtol=ATOL):
                return "ok"
        return "mismatched"

    def _after_signal(self, start) -> bool:
        return self.signal_time is not None and start >= self.signal_time

    def summary(self, phase: str | None) -> dict:
        """Figures of one phase's requests (None: all requests)."""
        with self._lock:
            rows = [r for r in self.records if phase is None or r[0] == phase]
        latencies = np.asarray([(r[3] - r[2]) * 1000 for r in rows if r[4] == "ok"])
        counts = collections.Counter(r[4] for r in rows)
        details = [f"{r[1]} {r[4]}: {r[6]}" for r in rows if r[4] in ("failed", "mismatched")][:10]
        return {
            "sent": len(rows),
            "ok": counts["ok"],
            "failed": counts["failed"],
            "mismatched": counts["mismatched"],
            "refused_after_shutdown": counts["refused"],
            "retried": int(sum(r[5] for r in rows)),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies.size else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
            "problems": details,
        }


# ---------------------------------------------------------------------- connection-level faults
def _first_line(data: bytes) -> str:
    if data.startswith(b"HTTP/"):
        return data.split(b"\r\n", 1)[0].decode("latin-1")[:40]
    return "non-HTTP bytes"


async def _slowloris(port: int, payload: bytes, connections: int, interval: float, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    stats = collections.Counter()
    lifetimes = []

    async def one(rng):
        await asyncio.sleep(rng.uniform(0, interval))
        while loop.time() < stop_at:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                stats["connect errors"] += 1
                await asyncio.sleep(interval)
                continue
            stats["opened"] += 1
            opened, position = loop.time(), 0
            try:
                while loop.time() < stop_at:
                    writer.write(payload[position % len(payload) : position % len(payload) + 1])
                    position += 1
                    await writer.drain()
                    try:
                        data = await asyncio.wait_for(reader.read(4096), interval)
                    except asyncio.TimeoutError:
                        continue
                    if not data:
                        raise ConnectionResetError
                    if data.startswith(b"HTTP/"):
                        stats[_first_line(data)] += 1
            except (ConnectionError, OSError):
                stats["cut by the server"] += 1
                lifetimes.append(loop.time() - opened)
            finally:
                writer.close()

    await asyncio.gather(*(one(random.Random(i)) for i in range(connections)))
    stats = dict(stats)
    if lifetimes:
        stats["median seconds until cut"] = round(float(np.median(lifetimes)), 1)
    return stats


def _rest_garbage():
    head = b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return [
        ("random bytes", lambda rng: rng.randbytes(rng.randint(1, 2048))),
        ("truncated request line", lambda rng: b"POST /v1/models/bench:pre"),
        ("truncated headers", lambda rng: head[: rng.randint(20, len(head) - 1)]),
        ("truncated body", lambda rng: head + b'Content-Length: 500\r\n\r\n{"inputs": {"text": ["tru'),
        ("bad header", lambda rng: b"GET /v1/models/bench HTTP/1.1\r\n\x00\x01: \xff\xfe\r\n\r\n"),
        ("HTTP/2 preface", lambda rng: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(64)),
    ]


def _grpc_garbage():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame

    def frame_header(length, kind, flags, stream):
        return length.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big")

    return [
        ("random bytes", lambda rng: rng.randbytes(rng.randint(1, 2048))),
        ("truncated preface", lambda rng: preface[: rng.randint(1, len(preface) - 1)]),
        ("truncated SETTINGS frame", lambda rng: preface + frame_header(18, 4, 0, 0) + rng.randbytes(5)),
        ("truncated HEADERS frame", lambda rng: preface + settings + frame_header(200, 1, 4, 1) + rng.randbytes(20)),
        ("frames of random bytes", lambda rng: preface + settings + rng.randbytes(rng.randint(9, 512))),
        ("HTTP/1.1 request", lambda rng: b"POST /tensorflow.serving.PredictionService/Predict HTTP/1.1\r\n\r\n"),
    ]


async def _flood(port: int, payloads: list, rate: float, seconds: float, limit: int, seed: int, concurrency=32) -> dict:
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    stats = collections.Counter()
    period = concurrency / rate  # each worker opens one connection per period: `rate` per second in all

    async def worker(rng):
        next_start = loop.time() + rng.uniform(0, period)
        while loop.time() < stop_at and stats["connections"] < limit:
            await asyncio.sleep(max(0.0, next_start - loop.time()))
            next_start += period
            kind, make = rng.choice(payloads)
            stats["connections"] += 1
            stats[kind] += 1
            writer = None
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(make(rng))
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(256), 0.3)
                    stats["answer: " + (_first_line(data) if data else "closed")] += 1
                except asyncio.TimeoutError:
                    stats["answer: none within 0.3 s (we close)"] += 1
            except (ConnectionError, OSError):
                stats["answer: connection reset"] += 1
            finally:
                if writer is not None:
                    writer.close()

    await asyncio.gather(*(worker(random.Random(seed * 100 + i)) for i in range(concurrency)))
    return dict(stats)


def slowloris(target, connections: int, interval: float, seconds: float) -> dict:
    rest_payload = (
        b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: "
        + b"a" * 4096
    )
    grpc_payload = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 4096

    async def both():
        return await asyncio.gather(
            _slowloris(target.rest_port, rest_payload, connections // 2, interval, seconds),
            _slowloris(target.grpc_port, grpc_payload, connections - connections // 2, interval, seconds),
        )

    rest, grpc_ = asyncio.run(both())
    return {"REST": rest, "gRPC": grpc_, "connections": connections, "byte_interval_seconds": interval}


def flood(target, protocol: str, seconds: float, rate: float, limit: int) -> dict:
    """Garbage connections to one port at `rate` per second for `seconds` (at most `limit`)."""
    port, payloads = (target.rest_port, _rest_garbage()) if protocol == "REST" else (target.grpc_port, _grpc_garbage())
    started = time.monotonic()
    stats = asyncio.run(_flood(port, payloads, rate, seconds, limit, seed=1 if protocol == "REST" else 2))
    stats["connections per second"] = round(stats.get("connections", 0) / (time.monotonic() - started), 1)
    return stats


# ---------------------------------------------------------------------- malformed requests
def malformed_cases(model: str, max_request_bytes: int, max_json_depth: int, text: str) -> tuple:
    """(REST cases, gRPC cases): name -> (request, expected status, fragment the error must contain)."""
    path = f"/v1/models/{model}:predict"

    def body(texts, languages):
        return json.dumps({"signature_name": SIGNATURE, "inputs": {"text": texts, "language": languages}}).encode()

    deep = max(10000, max_json_depth + 1)
    rest = {
        "oversize body": ((path, body(["x" * max_request_bytes], ["en"]), None), 413, f"limit of {max_request_bytes}"),
        "deeply nested body": ((path, b"[" * deep + b"]" * deep, None), 400, f"limit is {max_json_depth} levels"),
        "wrong Content-Type": ((path, body([text], ["en"]), "text/plain"), 415, "must be JSON"),
        "invalid UTF-8": ((path, body([text], ["en"]).replace(b"\"en\"", b"\"\xe9n\""), None), 400, "UTF-8"),
        "unknown language": ((path, body([text], ["xx"]), None), 400, "'xx'"),
        "mixed valid/invalid rows": ((path, body([text, text, text], ["en", "zz", "fr"]), None), 400, "'zz'"),
        "mixed rows, a number as text": (
            (path, json.dumps({"signature_name": SIGNATURE, "instances": [
                {"text": text, "language": "en"}, {"text": 5, "language": "fr"}]}).encode(), None),
            400,
            "must hold strings",
        ),
    }
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    grpc_cases = {
        "unknown language": ((text_inputs([text], ["xx"]),), invalid, "'xx'"),
        "mixed valid/invalid rows": ((text_inputs([text, text, text], ["en", "zz", "fr"]),), invalid, "'zz'"),
        "invalid UTF-8 text": (
            ({"text": np.asarray([text.encode(), b"caf\xe9"], object),
              "language": np.asarray([b"en", b"fr"], object)},),
            invalid,
            "Invalid UTF-8",
        ),
        "oversize message": ((text_inputs(["x" * max_request_bytes], ["en"]),), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    }
    return rest, grpc_cases


def malformed(target, seconds: float, max_request_bytes: int, max_json_depth: int, text: str) -> dict:
    """Sends every malformed request in turn for `seconds`; tallies the answers per case."""
    rest_cases, grpc_cases = malformed_cases(target.model_name, max_request_bytes, max_json_depth, text)
    tallies = collections.defaultdict(collections.Counter)
    wrong = []
    deadline = time.monotonic() + seconds

    def rest_loop():
        while time.monotonic() < deadline:
            for name, ((path, payload, content_type), status, fragment) in rest_cases.items():
                connection = http.client.HTTPConnection("127.0.0.1", target.rest_port, timeout=60)
                try:
                    headers = {"Content-Type": content_type} if content_type else {}
                    connection.request("POST", path, body=payload, headers=headers)
                    response = connection.getresponse()
                    got, answer = response.status, response.read()
                finally:
                    connection.close()
                try:
                    message = json.loads(answer)["error"]
                except (ValueError, KeyError, TypeError):
                    message = None
                tallies[f"REST {name}"][str(got)] += 1
                if got != status or message is None or fragment not in message:
                    wrong.append(f"REST {name}: {got} {answer[:200]!r}")

    def grpc_loop():
        client = GrpcClient(f"127.0.0.1:{target.grpc_port}", target.model_name, timeout=60)
        try:
            while time.monotonic() < deadline:
                for name, ((inputs,), code, fragment) in grpc_cases.items():
                    try:
                        client.predict(inputs, SIGNATURE)
                        got, message = grpc.StatusCode.OK, ""
                    except ServerError as error:
                        got, message = error.status, error.message or ""
                    tallies[f"gRPC {name}"][got.name] += 1
                    if got != code or fragment not in message:
                        wrong.append(f"gRPC {name}: {got.name} {message[:200]}")
        finally:
            client.close()

    threads = [threading.Thread(target=rest_loop), threading.Thread(target=grpc_loop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "answers": {case: dict(counter) for case, counter in sorted(tallies.items())},
        "wrong_answers": len(wrong),
        "wrong_examples": wrong[:10],
    }


def _predict_embedding(client, inputs) -> np.ndarray:
    """One ``embed`` request (a REST client sends the JSON body itself: one request, no metadata call)."""
    if isinstance(client, RestClient):
        document = {"signature_name": SIGNATURE, "inputs": {
            key: [value.decode("utf-8") for value in values] for key, values in inputs.items()}}
        path = f"/v1/models/{client.model_name}:predict"
        return np.asarray(client.request("POST", path, document)["outputs"], np.float32)
    return np.asarray(client.predict(inputs, SIGNATURE)["embedding"], np.float32)


# ---------------------------------------------------------------------- burst beyond the queue
def burst(target, requests, expected_rows, count: int, texts_per_request: int, timeout: float = 60.0) -> dict:
    """`count` concurrent requests per protocol of `texts_per_request` texts each, all at once."""
    chosen = [i % len(requests) for i in range(texts_per_request)]
    inputs = text_inputs([requests[i][0] for i in chosen], [requests[i][1] for i in chosen])
    expected = expected_rows(chosen)
    statuses = collections.Counter()
    hung = mismatched = 0
    barrier = threading.Barrier(2 * count)

    def one(protocol):
        address = f"127.0.0.1:{target.rest_port if protocol == 'REST' else target.grpc_port}"
        client = (RestClient if protocol == "REST" else GrpcClient)(address, target.model_name, timeout=timeout)
        try:
            barrier.wait()
            start = time.monotonic()
            try:
                embedding = _predict_embedding(client, inputs)
                ok = any(np.allclose(embedding, table, atol=ATOL, rtol=ATOL) for table in expected)
                return f"{protocol} OK", not ok, time.monotonic() - start
            except ServerError as error:
                name = error.status if isinstance(error.status, int) else error.status.name
                return f"{protocol} {name}", False, time.monotonic() - start
            except (OSError, http.client.HTTPException) as error:
                return f"{protocol} {type(error).__name__}", False, time.monotonic() - start
        finally:
            client.close()

    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(2 * count) as pool:
        futures = [pool.submit(one, protocol) for protocol in ("REST", "gRPC") for _ in range(count)]
        for future in futures:
            try:
                status, wrong, seconds = future.result(timeout=timeout + 30)
            except concurrent.futures.TimeoutError:
                hung += 1
                continue
            statuses[status] += 1
            mismatched += int(wrong)
            slowest = max(slowest, seconds)
    return {
        "requests": 2 * count,
        "texts_per_request": texts_per_request,
        "answers": dict(statuses),
        "hung": hung,
        "mismatched": mismatched,
        "slowest_answer_seconds": round(slowest, 2),
    }


# ---------------------------------------------------------------------- versions on disk
class StatusWatcher:
    """Polls GET /v1/models/NAME; remembers every (version, state, error) it saw."""

    def __init__(self, target, interval: float = 0.1):
        self.target = target
        self.interval = interval
        self.seen = collections.defaultdict(set)  # version -> states
        self.errors = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> dict:
        try:
            status = self.target.status()
        except (ServerError, OSError, http.client.HTTPException):
            return {}
        for version, (state, error) in status.items():
            self.seen[version].add(state)
            if error:
                self.errors[version] = error
        return status


def _wait_for(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def hot_swap(target, good_source: str, corrupt_source: str, first_version: int, workdir: str, timeout=180) -> dict:
    """Corrupt versions appear one by one (renamed into the base path), then a good one."""
    watcher = StatusWatcher(target).start()
    corrupt = {}
    try:
        version = first_version
        for name, corrupt_copy in CORRUPTIONS.items():
            staged = corrupt_copy(corrupt_source, os.path.join(workdir, f"corrupt-{version}"))
            os.rename(staged, os.path.join(target.base_path, str(version)))
            reported = _wait_for(lambda v=version: watcher.poll().get(v, ("", ""))[0] == "END", timeout)
            corrupt[name] = {"version": version, "reported": reported}
            version += 1
        good_version = version
        staged = shutil.copytree(good_source, os.path.join(workdir, f"good-{good_version}"))
        os.rename(staged, os.path.join(target.base_path, str(good_version)))
        took_over = _wait_for(
            lambda: watcher.poll().get(good_version, ("", ""))[0] == "AVAILABLE"
            and all(s == "END" for v, (s, _) in watcher.poll().items() if v != good_version),
            timeout,
        )
        time.sleep(1.0)  # keep serving after the switch
        final = watcher.poll()
    finally:
        watcher.stop()
    for details in corrupt.values():
        details["ever_available"] = "AVAILABLE" in watcher.seen[details["version"]]
        details["reason"] = watcher.errors.get(details["version"], "")
    return {
        "corrupt": corrupt,
        "good_version": good_version,
        "good_took_over": took_over,
        "final_states": {str(v): s for v, (s, _) in sorted(final.items())},
    }


def export_kills(target, model_dir: str, kills: int, first_version: int, seed: int, timeout=300) -> dict:
    """One complete `serving/export.py` run, then `kills` runs killed with SIGKILL while writing.

    The complete run is watched to time its writing (from the moment its hidden temporary
    directory appears to the rename into place); each later run is killed at a random
    point of that span after its own temporary directory has appeared (process start-up
    time varies too much on shared cores to aim from the start).
    """
    rng = random.Random(seed)
    export_base = os.path.dirname(target.base_path)
    environment = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")

    def command(version):
        return [sys.executable, "-m", "serving.export", f"--model_dir={model_dir}", f"--export_base={export_base}",
                f"--model_name={target.model_name}", f"--version={version}"]

    def writing(version):
        return any(name.startswith(f".tmp-export-{version}-") for name in os.listdir(target.base_path))

    watcher = StatusWatcher(target).start()
    runs = []
    try:
        start = time.monotonic()
        process = subprocess.Popen(command(first_version), env=environment, cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        write_started = renamed = None
        final_path = os.path.join(target.base_path, str(first_version))
        while process.poll() is None and time.monotonic() - start < timeout:
            if write_started is None and writing(first_version):
                write_started = time.monotonic() - start
            if renamed is None and os.path.isdir(final_path):
                renamed = time.monotonic() - start
            time.sleep(0.02)
        duration = time.monotonic() - start
        if process.poll() is None or process.returncode != 0:
            process.kill()
            raise RuntimeError(f"serving.export failed (exit code {process.returncode})")
        window = (write_started or 0.0, renamed or duration)
        complete_available = _wait_for(
            lambda: watcher.poll().get(first_version, ("", ""))[0] == "AVAILABLE", timeout
        )
        for index in range(kills):
            version = first_version + 1 + index
            delay = rng.uniform(0.0, window[1] - window[0])
            process = subprocess.Popen(command(version), env=environment, cwd=REPO,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_for(lambda v=version: writing(v) or process.poll() is not None, timeout, interval=0.02)
            time.sleep(delay)
            mid_write = writing(version)
            finished_first = process.poll() is not None
            process.send_signal(signal.SIGKILL)
            process.wait()
            runs.append({"version": version, "killed_seconds_into_writing": round(delay, 1), "mid_write": mid_write,
                         "had_finished": finished_first,
                         "version_dir_exists": os.path.isdir(os.path.join(target.base_path, str(version)))})
        time.sleep(2.0)  # a few scans of the base path
        final = watcher.poll()
    finally:
        watcher.stop()
    leftovers = [name for name in os.listdir(target.base_path) if name.startswith(".tmp-export-")]
    partial_loaded = []
    for run in runs:
        states = watcher.seen.get(run["version"], set())
        run["states_seen"] = sorted(states)
        # A killed export leaves no version at all, or (killed after its rename) a complete one.
        if (states and not run["version_dir_exists"]) or run["version"] in watcher.errors:
            partial_loaded.append(run["version"])
    for name in leftovers:
        shutil.rmtree(os.path.join(target.base_path, name), ignore_errors=True)
    return {
        "complete_export_seconds": round(duration, 1),
        "writing_window_seconds": [round(t, 2) for t in window],  # temporary directory appears .. renamed
        "complete_export_available": complete_available,
        "kills": runs,
        "partial_versions_seen": partial_loaded,
        "temporary_dirs_left": len(leftovers),
        "final_states": {str(v): s for v, (s, _) in sorted(final.items())},
    }


def _logged_stop_seconds(log_path) -> float | None:
    """From the server's log: seconds from the shutdown signal to "server stopped" (models unloaded)."""
    if not log_path or not os.path.exists(log_path):
        return None
    times = {}
    with open(log_path, encoding="utf-8", errors="replace") as file:
        for line in file:
            for key, marker in (("signal", "shutting down"), ("stopped", "server stopped")):
                match = re.match(r"^I\d{4} (\d+):(\d+):(\d+\.\d+)", line)
                if marker in line and match:
                    hours, minutes, seconds = match.groups()
                    times[key] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if "signal" in times and "stopped" in times:
        return round(times["stopped"] - times["signal"], 3)
    return None


def sigterm(target, load: ValidLoad, requests, expected_rows, grace_seconds: float, heavy=2, texts=12) -> dict:
    """SIGTERM under load, a few many-text requests sent just before; in-flight requests must finish."""
    chosen = [i % len(requests) for i in range(texts)]
    inputs = text_inputs([requests[i][0] for i in chosen], [requests[i][1] for i in chosen])
    expected = expected_rows(chosen)
    heavy_results, heavy_done = [], []

    def send(protocol):
        address = f"127.0.0.1:{target.rest_port if protocol == 'REST' else target.grpc_port}"
        client = (RestClient if protocol == "REST" else GrpcClient)(address, target.model_name, timeout=60)
        try:
            embedding = _predict_embedding(client, inputs)
            ok = any(np.allclose(embedding, table, atol=ATOL, rtol=ATOL) for table in expected)
            heavy_results.append("ok" if ok else "mismatched")
            heavy_done.append(time.perf_counter())
        except (ServerError, OSError, http.client.HTTPException) as error:
            heavy_results.append(f"failed: {error!r}"[:200])
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=("REST" if i % 2 else "gRPC",)) for i in range(heavy)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    load.signal_time = time.perf_counter()
    target.process.send_signal(signal.SIGTERM)
    try:
        target.process.wait(timeout=grace_seconds + 60)
    except subprocess.TimeoutExpired:
        target.process.kill()
    exit_seconds = time.perf_counter() - load.signal_time
    for thread in threads:
        thread.join()
    load.stop()  # every valid request has its final outcome now
    with load._lock:
        in_flight = [r for r in load.records if r[2] < load.signal_time <= r[3]]
    finished = [r[3] for r in in_flight if r[4] == "ok"] + heavy_done
    return {
        "graceful_stop_seconds": _logged_stop_seconds(target.log_path),
        "in_flight_at_signal": len(in_flight) + heavy,
        "in_flight_finished_ok": sum(r[4] == "ok" for r in in_flight) + heavy_results.count("ok"),
        "last_in_flight_answer_seconds": round(max(finished) - load.signal_time, 3) if finished else None,
        "heavy_requests": heavy_results,
        "server_exit_seconds": round(exit_seconds, 2),
        "grace_seconds": grace_seconds,
        "exit_code": target.process.returncode,
    }


# ---------------------------------------------------------------------- the suite
def run_phase(name, load, target, action, results, seconds=None):
    """Runs one fault (or, without `action`, `seconds` of no fault) under the valid load."""
    rss_before = target.rss_mb()
    load.phase = name
    started = time.monotonic()
    outcome = action() if action is not None else {}
    if action is None:
        time.sleep(seconds)
    rss_after = target.rss_mb()
    load.phase = f"after {name}"
    results[name] = {
        "fault": outcome,
        "seconds": round(time.monotonic() - started, 1),
        "rss_mb_before": rss_before,
        "rss_mb_after": rss_after,
    }
    print(f"  {name}: {results[name]['seconds']} s", flush=True)


def _server_errors(tally) -> int:
    """Answers with an HTTP 500 status line in a (nested) tally of answers."""
    if not isinstance(tally, dict):
        return 0
    return sum(
        (count if re.search(r"HTTP/1\.[01] 500", key) else 0) if not isinstance(count, dict) else _server_errors(count)
        for key, count in tally.items()
    )


def finish(results, load, memory_bound_mb) -> dict:
    """Adds the valid-request figures to every phase and checks the bounds."""
    for name, row in results.items():
        row["valid"] = load.summary(name)
    baseline = [r for r in load.records if r[0].startswith("baseline") and r[4] == "ok"]
    baseline_p99 = float(np.percentile([(r[3] - r[2]) * 1000 for r in baseline], 99)) if baseline else None
    checks = {"baseline_p99_ms": round(baseline_p99, 2) if baseline_p99 else None}
    for name, row in results.items():
        valid = row["valid"]
        valid["p99_vs_baseline"] = (
            round(valid["p99_ms"] / baseline_p99, 2) if valid["p99_ms"] and baseline_p99 else None
        )
        growth = (
            row["rss_mb_after"] - row["rss_mb_before"]
            if row["rss_mb_after"] is not None and row["rss_mb_before"] is not None
            else None
        )
        row["rss_growth_mb"] = round(growth, 1) if growth is not None else None
    everything = load.summary(None)
    checks["all_valid_requests"] = {k: everything[k] for k in ("sent", "ok", "failed", "mismatched", "retried")}
    latency_faults = [n for n in results if n.startswith(("slowloris", "flood"))]
    # Over every request of the run, including those between faults.
    checks["no_failed_valid_requests"] = everything["failed"] == 0
    checks["no_mismatched_valid_requests"] = everything["mismatched"] == 0
    checks["p99_within_3x_baseline_under_slowloris_and_floods"] = all(
        (results[n]["valid"]["p99_vs_baseline"] or 0) <= 3.0 for n in latency_faults
    )
    checks["no_500_answers_to_garbage"] = not any(_server_errors(results[name]["fault"]) for name in latency_faults)
    checks["malformed_requests_answered_as_expected"] = (
        results["malformed requests"]["fault"]["wrong_answers"] == 0 if "malformed requests" in results else None
    )
    checks["corrupt_versions_never_available"] = (
        all(not d["ever_available"] and d["reason"] for d in results["hot swap"]["fault"]["corrupt"].values())
        if "hot swap" in results else None
    )
    checks["memory_growth_within_bound"] = all(
        r["rss_growth_mb"] is None or r["rss_growth_mb"] <= memory_bound_mb
        for n, r in results.items()
        if n not in LOADING_FAULTS
    )
    checks["memory_bound_mb"] = memory_bound_mb
    return checks


def print_table(results, checks):
    print(
        f"\n{'fault':<22} {'valid sent':>10} {'failed':>6} {'mismatch':>8} {'retried':>7} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'p99/base':>8} {'RSS MB before':>13} {'after':>7}"
    )
    for name, row in results.items():
        valid = row["valid"]

        def number(value, width, digits=1):
            return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

        print(
            f"{name:<22} {valid['sent']:>10} {valid['failed']:>6} {valid['mismatched']:>8} {valid['retried']:>7}"
            f" {number(valid['p50_ms'], 7)} {number(valid['p99_ms'], 7)} {number(valid['p99_vs_baseline'], 8, 2)}"
            f" {number(row['rss_mb_before'], 13)} {number(row['rss_mb_after'], 7)}"
        )
    print()
    for key, value in checks.items():
        print(f"  {key}: {value}")


def _kill_point(run) -> str:
    return "mid-write" if run["mid_write"] else "had finished" if run["had_finished"] else "after the rename"


def describe_faults(results) -> list:
    """One line per fault saying what the fault itself met (printed below the table)."""
    lines = []
    for name, row in results.items():
        fault = row["fault"]
        if not fault:
            continue
        if name == "slowloris":
            for protocol in ("REST", "gRPC"):
                part = fault[protocol]
                lines.append(
                    f"slowloris {protocol}: {part.get('opened', 0)} connections opened, "
                    f"{part.get('cut by the server', 0)} cut by the server "
                    f"(median {part.get('median seconds until cut', '-')} s after opening)"
                )
        elif name.startswith("flood"):
            answers = {k[8:]: v for k, v in fault.items() if k.startswith("answer: ")}
            lines.append(f"{name}: {fault.get('connections', 0)} connections "
                         f"({fault.get('connections per second')}/s); answers {answers}")
        elif name == "malformed requests":
            lines.append(f"malformed requests: {sum(sum(c.values()) for c in fault['answers'].values())} sent, "
                         f"{fault['wrong_answers']} answered other than expected")
            for case, counts in fault["answers"].items():
                lines.append(f"    {case}: {counts}")
        elif name == "burst":
            lines.append(f"burst: {fault['requests']} x {fault['texts_per_request']} texts at once -> "
                         f"{fault['answers']}, hung {fault['hung']}, slowest answer {fault['slowest_answer_seconds']} s")
        elif name == "hot swap":
            for kind, details in fault["corrupt"].items():
                lines.append(f"hot swap, {kind} (version {details['version']}): ever AVAILABLE "
                             f"{details['ever_available']}; status: {details['reason'][:150]}")
            lines.append(f"hot swap, good version {fault['good_version']} took over: {fault['good_took_over']}; "
                         f"final states {fault['final_states']}")
        elif name == "export SIGKILL":
            lines.append(f"export SIGKILL: complete export {fault['complete_export_seconds']} s, writing "
                         f"{fault['writing_window_seconds'][0]}-{fault['writing_window_seconds'][1]} s; kills "
                         + ", ".join(f"v{r['version']} {r['killed_seconds_into_writing']} s into writing ({_kill_point(r)})"
                                     for r in fault["kills"])
                         + f"; partial versions seen: {fault['partial_versions_seen']}; "
                         f"temporary dirs left: {fault['temporary_dirs_left']}")
        elif name == "SIGTERM":
            lines.append(f"SIGTERM: {fault['in_flight_finished_ok']}/{fault['in_flight_at_signal']} in-flight "
                         f"requests finished OK, the last {fault['last_in_flight_answer_seconds']} s after the signal; "
                         f"graceful stop (log) {fault['graceful_stop_seconds']} s; "
                         f"server process exited after {fault['server_exit_seconds']} s "
                         f"(grace {fault['grace_seconds']} s, exit code {fault['exit_code']}); "
                         f"{row['valid']['refused_after_shutdown']} requests sent after the signal were refused")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load-only fault")
    parser.add_argument("--rest_clients", type=int, default=3)
    parser.add_argument("--grpc_clients", type=int, default=3)
    parser.add_argument("--slowloris", type=int, default=300, help="slow connections (half per port)")
    parser.add_argument("--slowloris_interval", type=float, default=3.0, help="seconds between their bytes")
    parser.add_argument("--flood_rate", type=float, default=200.0, help="garbage connections per second per port")
    parser.add_argument("--flood_connections", type=int, default=3000, help="most garbage connections per port")
    parser.add_argument("--burst", type=int, default=48, help="concurrent burst requests per protocol")
    parser.add_argument("--kills", type=int, default=3, help="exports killed with SIGKILL")
    parser.add_argument("--memory_bound_mb", type=float, default=64.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "faults.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    header_timeout, grace, max_request_bytes, max_json_depth = 10.0, 10.0, 1 << 20, 64
    batching = BatchingOptions(max_batch_size=8, batch_timeout_micros=2000, max_enqueued_batches=4)

    from tf_metaling.tokenizers import WordPieceTokenizer

    workdir = tempfile.mkdtemp(prefix="serving_faults_")
    results = {}
    try:
        print("building the models and exports ...", flush=True)
        tokenizer = WordPieceTokenizer.train(generated_texts(20, 300), vocab_size=2000)
        from serving.export import export_model

        export_base = os.path.join(workdir, "exports")
        first = export_model(build_model(tokenizer, seed=1), export_base, MODEL, 1, tokenizer=tokenizer)
        model_b = build_model(tokenizer, seed=2)
        good = export_model(model_b, os.path.join(workdir, "staging"), MODEL, 1, tokenizer=tokenizer)
        model_dir = save_model_dir(model_b, tokenizer, os.path.join(workdir, "model_dir"))
        texts = generated_texts(8, 4, seed=3)
        requests = [(texts[code][i], code) for i in range(4) for code in LANGUAGES]
        table_a, table_b = direct_embeddings(first, requests), direct_embeddings(good, requests)
        # Version 1 is model A; every later good version (hot swap, exports) is model B.
        expected = collections.defaultdict(lambda: None, {1: table_a})
        for version in range(5, 5 + 2 + args.kills):
            expected[version] = table_b

        def expected_rows(indices):
            return [table[indices] for table in (table_a, table_b)]

        process, grpc_port, rest_port = start_server(
            first,
            batching,
            extra_flags=[
                "--file_system_poll_wait_seconds=0.2",
                f"--grace_seconds={grace}",
                f"--max_request_bytes={max_request_bytes}",
                f"--max_json_depth={max_json_depth}",
                f"--rest_header_timeout_seconds={header_timeout}",
            ],
            log_path=os.path.join(workdir, "server.log"),
        )
        target = Target(rest_port, grpc_port, os.path.dirname(first), MODEL, process,
                        os.path.join(workdir, "server.log"))
        load = ValidLoad(target, requests, dict(expected), args.rest_clients, args.grpc_clients).start()
        try:
            time.sleep(2.0)  # warm up
            text = requests[0][0]
            run_phase("baseline", load, target, None, results, args.seconds)
            run_phase("slowloris", load, target,
                      lambda: slowloris(target, args.slowloris, args.slowloris_interval,
                                        max(2 * args.seconds, header_timeout + 3 * args.slowloris_interval)), results)
            run_phase("flood REST", load, target,
                      lambda: flood(target, "REST", args.seconds, args.flood_rate, args.flood_connections), results)
            run_phase("flood gRPC", load, target,
                      lambda: flood(target, "gRPC", args.seconds, args.flood_rate, args.flood_connections), results)
            run_phase("baseline again", load, target, None, results, args.seconds)
            run_phase("malformed requests", load, target,
                      lambda: malformed(target, args.seconds, max_request_bytes, max_json_depth, text), results)
            run_phase("burst", load, target, lambda: burst(target, requests, expected_rows, args.burst, 8), results)
            run_phase("hot swap", load, target, lambda: hot_swap(target, good, first, 2, workdir), results)
            run_phase("export SIGKILL", load, target,
                      lambda: export_kills(target, model_dir, args.kills, 6, args.seed), results)
            run_phase("SIGTERM", load, target,
                      lambda: sigterm(target, load, requests, expected_rows, grace), results)
        finally:
            load.stop()
            if process.poll() is None:
                stop_server(process)
        checks = finish(results, load, args.memory_bound_mb)
    finally:
        if os.path.exists(os.path.join(workdir, "server.log")):
            os.makedirs(os.path.dirname(args.output), exist_ok=True)
            shutil.copy(os.path.join(workdir, "server.log"), os.path.splitext(args.output)[0] + "_server.log")
        shutil.rmtree(workdir, ignore_errors=True)

    load_after = os.getloadavg()
    print(f"\nembed requests, model d=64 x 2 layers; {args.rest_clients} REST + {args.grpc_clients} gRPC valid clients; "
          f"load average before/after {load_before[0]:.1f}/{load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print_table(results, checks)
    print()
    for line in describe_faults(results):
        print(line)
    report = {
        "benchmark": "faults",
        "arguments": vars(args),
        "server": {"batching": dataclasses.asdict(batching), "rest_header_timeout_seconds": header_timeout,
                   "grace_seconds": grace, "max_request_bytes": max_request_bytes, "max_json_depth": max_json_depth},
        "machine": machine_info(load_average_before=load_before, load_average_after=load_after),
        "results": results,
        "checks": checks,
    }
    print(f"\nwrote {write_results(args.output, report)}")


if __name__ == "__main__":
    main()
