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
  dynamic batching (max batch 32), over REST and over gRPC;
- batch 1 (one client, one request at a time) and 32 concurrent clients.
Reported: p50 / p99 latency (ms) and requests/s.

    python benchmarks/serving.py                 # prints the table, writes JSON
    python benchmarks/serving.py --seconds 4     # quicker

Targets (one run): gRPC p50 at batch 1 <= 1.5 x direct p50 + 1 ms; with dynamic
batching at 32 concurrent clients, requests/s >= 3 x the same clients without
batching.
"""

from __future__ import annotations

import argparse
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
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from serving.client import GrpcClient, RestClient, text_inputs
from serving.export import export_model
from tf_metaling.data.tokenizer import Tokenizer
from tf_metaling.models import MultilingualEncoder, MultilingualModel

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
    tokenizer = Tokenizer.train(texts, vocab_size=8000)
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
    """`clients` threads each calling make_call()(text, language) back to back for `seconds`."""
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
    elapsed = time.perf_counter() - start
    result = summarize([x for per_client in latencies for x in per_client], elapsed)
    result["errors"] = len(errors)
    return result


def start_server(export_dir: str, batching: bool):
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
    if batching:
        command += ["--enable_batching", "--max_batch_size=32", "--batch_timeout_micros=5000", "--num_batch_threads=1"]
    environment = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment, cwd=REPO
    )
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
    def make():
        client = RestClient(f"127.0.0.1:{port}", "bench")
        return lambda text, code: client.predict_text(SIGNATURE, [text], [code])

    return make


def grpc_call(port):
    def make():
        client = GrpcClient(f"127.0.0.1:{port}", "bench")
        return lambda text, code: client.predict_text(SIGNATURE, [text], [code])

    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement time per configuration")
    parser.add_argument("--long_words", type=int, default=120, help="words per long text (fills 128 positions)")
    parser.add_argument("--short_words", type=int, default=8, help="words per short text")
    parser.add_argument("--output", default=os.path.join(RESULTS, "serving.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()

    workloads = {"long": args.long_words, "short": args.short_words}
    export_base = tempfile.mkdtemp(prefix="serving_benchmark_")
    rows = {name: {} for name in workloads}
    try:
        export_dir, vocabulary_size, requests, tokens = build_export(export_base, workloads)
        import tensorflow_text  # noqa: F401

        loaded = tf.saved_model.load(export_dir)
        function = loaded.signatures[SIGNATURE]

        def direct():
            def call(text, code):
                inputs = text_inputs([text], [code])
                return function(text=tf.constant(inputs["text"]), language=tf.constant(inputs["language"]))

            return call

        for name in workloads:
            rows[name]["direct, batch 1"] = run_clients(direct, requests[name], 1, args.seconds)
            rows[name]["direct, 32 concurrent"] = run_clients(direct, requests[name], 32, args.seconds)
        loaded = function = None  # free the in-process copy before the servers start

        for batching in (False, True):
            process, grpc_port, rest_port = start_server(export_dir, batching)
            try:
                mode = "batching" if batching else "no batching"
                for name in workloads:
                    for protocol, factory in (("gRPC", grpc_call(grpc_port)), ("REST", rest_call(rest_port))):
                        for clients in (1, 32):
                            label = f"{protocol}, {mode}, {'batch 1' if clients == 1 else '32 concurrent'}"
                            rows[name][label] = run_clients(factory, requests[name], clients, args.seconds)
            finally:
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
        print(f"{'configuration':<34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'n':>6} {'errors':>6}")
        for label, row in rows[name].items():
            print(
                f"{label:<34} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['requests_per_second']:>8.1f} "
                f"{row['requests']:>6} {row['errors']:>6}"
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
        "batching": {"max_batch_size": 32, "batch_timeout_micros": 5000, "num_batch_threads": 1},
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
