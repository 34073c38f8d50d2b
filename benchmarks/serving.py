"""Serving latency and throughput: REST and gRPC vs the direct in-process call, measured in one run.

Model: d=256, 4 layers, 4 heads, FFN 1024, 128 positions, adapters r=64 in every
block, 6 languages, a WordPiece vocabulary (8000 pieces requested) learned on
generated multilingual text. Requests go to the exported ``embed`` signature
(raw text + language, tokenized in the graph). Each request carries one text;
languages rotate. Two workloads: ``long`` texts that fill the 128 positions
(the model's sequence length, compute-bound) and ``short`` texts of a few words
(about 16 tokens, where per-request overhead matters most).

Measured, for the same SavedModel version:
- direct:  ``loaded.signatures["embed"](...)`` in this process;
- server (`tf-metaling-server` in a subprocess on 127.0.0.1), without and with
  dynamic batching (by default max batch 32, timeout 2 ms, one batch thread),
  over REST and over gRPC;
- batch 1 (one client, one request at a time) and 32 concurrent clients.
Reported: p50 / p99 latency (ms), requests/s, the CPU time per request of the
load generator (this process) and of the server process, and the cores busy.
Also the model's own ceiling for batching: "direct, one call on 32 texts" (texts/s of in-process calls on 32
texts at a time; its latency is per call).

Both servers run side by side and every configuration is measured in
interleaved rounds (a slice of each in turn, `--rounds` times), so a change of
machine load during the run hits all of them alike and the ratios stay
within-run comparisons. The load generator shares the 2 cores with the server,
so it replays requests prepared beforehand (PredictRequest protos for gRPC,
JSON bodies for REST) and decodes every answer; building a request with the
`serving.client` helpers costs the caller extra CPU that is not the server's.

    python benchmarks/serving.py                 # prints the table, writes JSON
    python benchmarks/serving.py --seconds 4     # quicker
    python benchmarks/serving.py --workloads short --num_batch_threads 2 --max_batch_size 16

Targets (one run): gRPC p50 at batch 1 <= 1.5 x direct p50 + 1 ms; with dynamic
batching at 32 concurrent clients, requests/s >= 3 x the same clients without
batching.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import psutil
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from serving.batcher import BatchingOptions
from serving.client import GrpcClient, RestClient, text_inputs
from serving.export import export_model
from tf_metaling.models import MultilingualEncoder, MultilingualModel
from tf_metaling.tokenizers import WordPieceTokenizer

RESULTS = os.path.join(REPO, "benchmarks", "results")
LANGUAGES = ["en", "ar", "fr", "ru", "hi", "sw"]
SIGNATURE = "embed"


def generated_texts(words_per_text: int, count: int, seed: int = 0) -> dict:
    """Per language, `count` texts of made-up words from a language-specific syllable set."""
    rng = np.random.RandomState(seed)
    syllables = {
        "en": ["th", "e", "an", "st", "ing", "er", "o", "re"],
        "ar": ["ال", "م", "ن", "ك", "ب", "ر", "ي", "و"],
        "fr": ["le", "la", "ou", "eau", "ch", "in", "é", "re"],
        "ru": ["ст", "ов", "на", "ра", "ко", "и", "о", "ть"],
        "hi": ["क", "र", "ना", "में", "है", "स", "ता", "प"],
        "sw": ["ka", "wa", "ni", "na", "mb", "ji", "la", "u"],
    }
    texts = {}
    for code in LANGUAGES:
        parts = syllables[code]
        vocabulary = ["".join(rng.choice(parts, size=rng.randint(1, 5))) for _ in range(3000)]
        texts[code] = [" ".join(rng.choice(vocabulary, size=words_per_text)) for _ in range(count)]
    return texts


def build_export(export_base: str, workloads: dict):
    texts = generated_texts(40, 1500)
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=8000)
    encoder = MultilingualEncoder(
        vocabulary_size=tokenizer.vocab_size,
        languages=LANGUAGES,
        hidden_dim=256,
        num_layers=4,
        num_heads=4,
        intermediate_dim=1024,
        max_sequence_length=128,
        language_specific="adapter",
        adapter_dim=64,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model = MultilingualModel(encoder)
    path = export_model(model, export_base, "bench", 1, tokenizer=tokenizer)
    requests, tokens = {}, {}
    for name, words in workloads.items():
        requests[name] = generated_texts(words, 50, seed=1)
        mask = tokenizer.encode(tf.constant(requests[name]["en"]), 128)["padding_mask"].numpy()
        tokens[name] = round(float(mask.sum(axis=1).mean()), 1)
    return path, tokenizer.vocab_size, requests, tokens


def request_stream(requests):
    """Endless (text, language) pairs, languages in rotation."""
    index = 0
    while True:
        code = LANGUAGES[index % len(LANGUAGES)]
        yield requests[code][(index // len(LANGUAGES)) % len(requests[code])], code
        index += 1


def summarize(latencies: list, elapsed: float) -> dict:
    values = np.asarray(latencies) * 1000.0
    return {
        "requests": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "requests_per_second": round(len(values) / elapsed, 1),
    }


def run_clients(make_call, requests, clients: int, seconds: float, warmup: int = 3) -> dict:
    """`clients` threads each calling make_call()(text, language) back to back for `seconds`.

    Returns the raw per-request latencies, the elapsed time and the errors (see `summarize`).
    """
    calls = [make_call() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    latencies, errors = [[] for _ in range(clients)], []
    deadline = [0.0]

    def worker(index):
        call, stream = calls[index], request_stream(requests)
        for _ in range(warmup):
            call(*next(stream))
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            text, code = next(stream)
            start = time.perf_counter()
            try:
                call(text, code)
            except Exception as error:  # noqa: BLE001 - counted and reported
                errors.append(repr(error))
                continue
            latencies[index].append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = float("inf")
    barrier.wait()
    start = time.perf_counter()
    deadline[0] = start + seconds
    for thread in threads:
        thread.join()
    return {
        "latencies": [x for per_client in latencies for x in per_client],
        "elapsed": time.perf_counter() - start,
        "errors": errors,
    }


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_interleaved(targets: dict, requests, clients: int, seconds: float, rounds: int) -> dict:
    """Measures every target for `seconds` in total, in `rounds` interleaved slices.

    `targets` maps a name to ``(make_call, server process or None)``. Besides
    latencies, the CPU time that each request cost the load generator (this
    process) and the server process is recorded, to show where the cores go.
    """
    this = psutil.Process()
    raw = {name: {"latencies": [], "elapsed": 0.0, "errors": [], "client_cpu": 0.0, "server_cpu": 0.0}
           for name in targets}
    for _ in range(rounds):
        for name, (make_call, server) in targets.items():
            before = cpu_seconds(this), cpu_seconds(server) if server else 0.0
            part = run_clients(make_call, requests, clients, seconds / rounds)
            raw[name]["client_cpu"] += cpu_seconds(this) - before[0]
            raw[name]["server_cpu"] += (cpu_seconds(server) - before[1]) if server else 0.0
            for key in ("latencies", "elapsed", "errors"):
                raw[name][key] += part[key]
    results = {}
    for name, measured in raw.items():
        results[name] = summarize(measured["latencies"], measured["elapsed"])
        results[name]["errors"] = len(measured["errors"])
        count = max(len(measured["latencies"]), 1)
        # CPU per request; the direct call's model work counts as the client's.
        results[name]["client_cpu_ms_per_request"] = round(1000.0 * measured["client_cpu"] / count, 3)
        results[name]["server_cpu_ms_per_request"] = round(1000.0 * measured["server_cpu"] / count, 3)
        results[name]["cores_busy"] = round((measured["client_cpu"] + measured["server_cpu"]) / measured["elapsed"], 2)
    return results


def start_server(export_dir: str, batching: BatchingOptions | None, extra_flags=(), log_path: str | None = None):
    """The server on free loopback ports, with dynamic batching when `batching` is given.

    `extra_flags` come last (they override the ones here); the server's log goes to `log_path` if given.
    """
    command = [
        sys.executable,
        "-m",
        "serving.server",
        "--model_name=bench",
        f"--model_base_path={os.path.dirname(export_dir)}",
        "--port=0",
        "--rest_api_port=0",
        "--file_system_poll_wait_seconds=0",
        "--threads=64",
    ]
    if batching is not None:
        command += ["--enable_batching", f"--max_batch_size={batching.max_batch_size}",
                    f"--batch_timeout_micros={batching.batch_timeout_micros}",
                    f"--num_batch_threads={batching.num_batch_threads}",
                    f"--max_enqueued_batches={batching.max_enqueued_batches}"]
    command += list(extra_flags)
    environment = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    log = open(log_path, "w", encoding="utf-8") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=REPO)
    line = process.stdout.readline()
    if not line.startswith("serving gRPC="):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    grpc_port, rest_port = (int(part.split("=")[1]) for part in line.split()[1:])
    return process, grpc_port, rest_port


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def rest_call(port):
    """A REST client replaying prepared JSON bodies."""
    path = "/v1/models/bench:predict"

    def make():
        client = RestClient(f"127.0.0.1:{port}", "bench")
        bodies = {}

        def call(text, code):
            body = bodies.get((text, code))
            if body is None:
                body = bodies[(text, code)] = json.dumps(
                    {"signature_name": SIGNATURE, "inputs": {"text": [text], "language": [code]}}
                ).encode("utf-8")
            return client.request("POST", path, body)["outputs"]

        return call

    return make


def grpc_call(port):
    """A gRPC client (tensorflow-serving-api stub) replaying prepared PredictRequests."""

    def make():
        client = GrpcClient(f"127.0.0.1:{port}", "bench")
        prepared = {}

        def call(text, code):
            request = prepared.get((text, code))
            if request is None:
                request = prepared[(text, code)] = client.predict_request(text_inputs([text], [code]), SIGNATURE)
            response = client.send(request)
            return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}

        return call

    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement time per configuration")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved slices per configuration")
    parser.add_argument("--long_words", type=int, default=120, help="words per long text (fills 128 positions)")
    parser.add_argument("--short_words", type=int, default=8, help="words per short text")
    parser.add_argument("--max_batch_size", type=int, default=32, help="the batching server's largest batch")
    parser.add_argument("--num_batch_threads", type=int, default=1, help="the batching server's batch threads")
    parser.add_argument("--batch_timeout_micros", type=int, default=2000, help="the batching server's batch timeout")
    parser.add_argument("--workloads", default="long,short", help="comma-separated: long, short")
    parser.add_argument("--output", default=os.path.join(RESULTS, "serving.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()

    sizes = {"long": args.long_words, "short": args.short_words}
    chosen = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(sizes))
    if unknown or not chosen:
        parser.error(f"--workloads: unknown {unknown or 'empty'}; choose from {sorted(sizes)}")
    workloads = {name: sizes[name] for name in chosen}
    try:
        batching = BatchingOptions(
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads,
        )
    except ValueError as error:
        parser.error(str(error))
    export_base = tempfile.mkdtemp(prefix="serving_benchmark_")
    rows = {name: {} for name in workloads}
    try:
        export_dir, vocabulary_size, requests, tokens = build_export(export_base, workloads)
        import tensorflow_text  # noqa: F401

        loaded = tf.saved_model.load(export_dir)
        function = loaded.signatures[SIGNATURE]

        def direct():
            def call(text, code):
                inputs = text_inputs(text, code)  # one text or a list
                outputs = function(text=tf.constant(inputs["text"]), language=tf.constant(inputs["language"]))
                return {key: value.numpy() for key, value in outputs.items()}

            return call

        servers = {batched: start_server(export_dir, batching if batched else None) for batched in (False, True)}
        try:
            targets = {"direct": (direct, None)}
            for protocol, factory in (("gRPC", grpc_call), ("REST", rest_call)):
                for batched, (process, grpc_port, rest_port) in servers.items():
                    mode = "batching" if batched else "no batching"
                    port = grpc_port if protocol == "gRPC" else rest_port
                    targets[f"{protocol}, {mode}"] = (factory(port), psutil.Process(process.pid))
            for name in workloads:
                # The model's own ceiling for batching: one in-process call on 32 texts at a time.
                texts = [requests[name][LANGUAGES[i % len(LANGUAGES)]][i] for i in range(32)]
                codes = [LANGUAGES[i % len(LANGUAGES)] for i in range(32)]
                ceiling = run_clients(lambda: lambda _text, _code: direct()(texts, codes), requests[name], 1,
                                      args.seconds / 2)
                row = summarize(ceiling["latencies"], ceiling["elapsed"])
                row["requests_per_second"] = round(32 * row["requests_per_second"], 1)  # texts/s
                row["errors"] = len(ceiling["errors"])
                rows[name]["direct, one call on 32 texts"] = row
                for clients in (1, 32):
                    shape = "batch 1" if clients == 1 else "32 concurrent"
                    print(f"measuring {name} texts, {shape} ...", flush=True)
                    measured = run_interleaved(targets, requests[name], clients, args.seconds, args.rounds)
                    for target, row in measured.items():
                        rows[name][f"{target}, {shape}"] = row
        finally:
            for process, _, _ in servers.values():
                stop_server(process)
    finally:
        shutil.rmtree(export_base, ignore_errors=True)

    targets = {}
    for name in workloads:
        direct_p50 = rows[name]["direct, batch 1"]["p50_ms"]
        grpc_p50 = rows[name]["gRPC, no batching, batch 1"]["p50_ms"]
        found = {
            "grpc_batch1_p50_ms": grpc_p50,
            "grpc_batch1_p50_limit_ms": round(1.5 * direct_p50 + 1.0, 2),
            "grpc_batch1_p50_met": bool(grpc_p50 <= 1.5 * direct_p50 + 1.0),
        }
        for protocol in ("gRPC", "REST"):
            ratio = (
                rows[name][f"{protocol}, batching, 32 concurrent"]["requests_per_second"]
                / rows[name][f"{protocol}, no batching, 32 concurrent"]["requests_per_second"]
            )
            found[f"{protocol.lower()}_batching_speedup_32_clients"] = round(ratio, 2)
            found[f"{protocol.lower()}_batching_speedup_met"] = bool(ratio >= 3.0)
        targets[name] = found
    load_after = os.getloadavg()

    print(
        f"\nembed signature; model d=256 x 4 layers, 128 positions, vocabulary {vocabulary_size}; "
        f"load average before/after {load_before[0]:.1f}/{load_after[0]:.1f} on {os.cpu_count()} CPUs"
    )
    for name in workloads:
        print(f"\n{name} texts: {tokens[name]} tokens per request on average")
        print(f"{'configuration':<34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'n':>6} {'errors':>6}"
              f" {'CPU ms/req: client':>19} {'server':>7} {'cores busy':>10}")
        for label, row in rows[name].items():
            cpu = (f" {row['client_cpu_ms_per_request']:>19.2f} {row['server_cpu_ms_per_request']:>7.2f}"
                   f" {row['cores_busy']:>10.2f}") if "cores_busy" in row else ""
            print(
                f"{label:<34} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['requests_per_second']:>8.1f} "
                f"{row['requests']:>6} {row['errors']:>6}{cpu}"
            )
        for key, value in targets[name].items():
            print(f"  {key}: {value}")

    report = {
        "benchmark": "serving",
        "signature": SIGNATURE,
        "tokens_per_request": tokens,
        "model": {
            "hidden_dim": 256,
            "num_layers": 4,
            "num_heads": 4,
            "intermediate_dim": 1024,
            "max_sequence_length": 128,
            "adapter_dim": 64,
            "languages": LANGUAGES,
            "vocabulary_size": vocabulary_size,
        },
        "seconds_per_configuration": args.seconds,
        "interleaved_rounds": args.rounds,
        "batching": dataclasses.asdict(batching),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "results": rows,
        "targets": targets,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    temporary = args.output + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
    os.replace(temporary, args.output)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
