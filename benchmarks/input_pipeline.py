"""Input pipeline benchmark: MLM throughput and memory while streaming large files.

    python benchmarks/input_pipeline.py                      # everything
    python benchmarks/input_pipeline.py --sizes 16M,128M     # smaller memory run
    python benchmarks/input_pipeline.py --skip_memory        # throughput only

Throughput: examples/s and tokens/s of `pipelines.mlm_dataset` (tokenisation,
stream packing, language sampling, dynamic masking) on this machine's CPU
cores, for the small training preset's shape (batch 32 x sequence 128), on
the built-in corpus when it is in the cache (else on generated text). The
ratio column compares with the rate training consumes, measured in the same
run: examples/s of the `small` preset's fastest training step (JointAll: no LS
layers, no meta update; d=256, 4 layers, batch 32 x 128) on this machine
(`--consumption` replaces the measurement with a given figure).

Memory: for each size, a fresh process generates nothing but reads a
generated text file of that size from start to end through the full MLM
pipeline (file reader -> shuffle buffer -> tokenizer -> packing -> masking)
and reports its resident memory (sampled during the stream) and its process
peak (`ru_maxrss`), so flat memory across sizes shows that nothing grows with
the file.

Results are printed as a table and written to
``benchmarks/results/input_pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    if text[-1] in SIZE_UNITS:
        return int(float(text[:-1]) * SIZE_UNITS[text[-1]])
    return int(text)


def _human(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= SIZE_UNITS[unit]:
            return f"{size / SIZE_UNITS[unit]:.0f}{unit}B"
    return f"{size}B"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _current_rss_mb() -> float:
    """Resident set size now (Linux /proc), to follow memory during the stream."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


# ---------------------------------------------------------------- generated text
def generated_sentences(count: int, seed: int = 0) -> list[str]:
    """Multilingual-looking sentences (Latin, Cyrillic, Arabic letters)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    alphabets = [
        "abcdefghijklmnopqrstuvwxyz",
        "абвгдежзийклмнопрстуфхцчшщыэюя",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    ]
    pools = []
    for alphabet in alphabets:
        letters = list(alphabet)
        pools.append(
            ["".join(rng.choice(letters, size=int(rng.integers(2, 9)))) for _ in range(3000)]
        )
    sentences = []
    for i in range(count):
        pool = pools[i % len(pools)]
        words = [pool[int(j)] for j in rng.zipf(1.3, size=int(rng.integers(5, 30))) % len(pool)]
        sentences.append(" ".join(words) + ".")
    return sentences


def write_text_file(path: str, size: int, seed: int = 0) -> None:
    """Writes about `size` bytes of generated sentences, one per line."""
    import numpy as np

    if os.path.exists(path) and os.path.getsize(path) >= size:
        return
    sentences = generated_sentences(20000, seed)
    rng = np.random.default_rng(seed + 1)
    tmp = path + ".tmp"
    written = 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < size:
            block = "\n".join(sentences[i] for i in rng.permutation(len(sentences))) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    os.replace(tmp, path)


# ---------------------------------------------------------------- consumption
def measure_consumption(args, steps: int = 8, warmup: int = 2) -> dict:
    """Examples/s that the `small` preset's fastest training step (JointAll) consumes here."""
    import statistics
    import types

    import tensorflow as tf

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from train_step import build, make_batch

    from tf_metaling import configs

    preset = configs.get_experiment("small")
    shape = types.SimpleNamespace(
        hidden_dim=preset.model.hidden_dim, num_layers=preset.model.num_layers,
        num_heads=preset.model.num_heads, adapter_dim=preset.model.adapter_dim,
        vocabulary_size=preset.data.vocab_size, sequence_length=preset.data.sequence_length,
        predictions=preset.data.max_predictions, languages=len(preset.data.languages),
    )
    batch_size = preset.data.batch_size
    batch = make_batch(np.random.RandomState(0), batch_size, shape, [0] * batch_size)
    step = tf.function(build(shape, None).ordinary_step, autograph=False)
    for _ in range(warmup):
        float(step(batch)["loss"])
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(step(batch)["loss"])
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "examples_per_second": round(batch_size / median, 1),
        "median_step_seconds": round(median, 4),
        "steps_timed": steps,
        "step": f"small preset JointAll ordinary step, batch {batch_size} x {shape.sequence_length}",
    }


# ---------------------------------------------------------------- throughput
def measure_throughput(sources, tokenizer, languages, config, seconds: float) -> dict:
    from tf_metaling.data.pipelines import mlm_dataset

    start = time.perf_counter()
    iterator = iter(mlm_dataset(sources, tokenizer, languages, config))
    next(iterator)
    first_batch = time.perf_counter() - start
    examples = real_tokens = batches = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or batches < 20:
        batch = next(iterator)
        examples += int(batch["token_ids"].shape[0])
        real_tokens += int(batch["padding_mask"].numpy().sum())
        batches += 1
    elapsed = time.perf_counter() - start
    return {
        "batches": batches,
        "seconds": round(elapsed, 2),
        "first_batch_seconds": round(first_batch, 2),
        "examples_per_second": round(examples / elapsed, 1),
        "tokens_per_second": round(real_tokens / elapsed, 1),
        "padded_tokens_per_second": round(examples * config.sequence_length / elapsed, 1),
    }


def throughput_runs(args) -> tuple[list[dict], dict]:
    from tf_metaling.data.pipelines import MlmPipelineConfig
    from tf_metaling.languages import LanguageVocabulary
    from tf_metaling.tokenizers import WordPieceTokenizer

    corpus_note = "generated text"
    sources = None
    try:
        from tf_metaling.data.corpora import load_builtin_corpus

        corpus = load_builtin_corpus(args.cache_dir, download=False)
        sources = corpus.files("train")
        languages = corpus.language_vocabulary()
        corpus_note = f"built-in corpus train files ({', '.join(corpus.languages)})"
    except FileNotFoundError:
        sentences = generated_sentences(30000)
        os.makedirs(args.workdir, exist_ok=True)
        sources = {}
        for index, code in enumerate(("en", "ru", "ar")):
            path = os.path.join(args.workdir, f"generated.{code}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(sentences[index::3]) + "\n")
            sources[code] = path
        languages = LanguageVocabulary(list(sources))

    start = time.perf_counter()
    texts = {}
    for code, path in sources.items():
        with open(path, encoding="utf-8") as f:
            texts[code] = f.read().splitlines()
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=args.vocab_size)
    train_seconds = time.perf_counter() - start

    runs = []
    variants = [
        ("mixed", "stream"),
        ("one_language", "stream"),
        ("mixed", "sentence"),
    ]
    for batching, packing in variants:
        config = MlmPipelineConfig(
            batch_size=args.batch_size,
            sequence_length=args.sequence_length,
            max_predictions=args.max_predictions,
            batching=batching,
            packing=packing,
        )
        result = measure_throughput(sources, tokenizer, languages, config, args.seconds)
        result.update(
            batching=batching,
            packing=packing,
            ratio_to_consumption=round(result["examples_per_second"] / args.consumption, 1),
        )
        runs.append(result)
    info = {
        "corpus": corpus_note,
        "tokenizer_vocab_size": tokenizer.vocab_size,
        "tokenizer_training_seconds": round(train_seconds, 1),
        "sentences": {code: len(t) for code, t in texts.items()},
    }
    return runs, info


# ---------------------------------------------------------------- memory
def memory_worker(path: str, vocab_file: str, batch_size: int, sequence_length: int) -> dict:
    """Streams `path` to its end through the MLM pipeline; reports peak RSS."""
    import tensorflow as tf  # noqa: F401  (imported before measuring the baseline)

    from tf_metaling.data.pipelines import MlmPipelineConfig, mlm_dataset
    from tf_metaling.languages import LanguageVocabulary
    from tf_metaling.tokenizers import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.load(vocab_file)
    config = MlmPipelineConfig(batch_size=batch_size, sequence_length=sequence_length)
    # One language, one pass: sizes are given so nothing counts the file first.
    dataset = mlm_dataset(
        {"en": path},
        tokenizer,
        LanguageVocabulary(["en"]),
        config,
        sizes={"en": 1},
        repeat=False,
    )
    iterator = iter(dataset)
    batch = next(iterator)
    # Process peak so far covers TensorFlow start-up and tracing; the stream is
    # followed by sampling the current RSS every 200 batches.
    peak_before_stream = _peak_rss_mb()
    rss_start = _current_rss_mb()
    rss_max = rss_start
    examples, tokens = int(batch["token_ids"].shape[0]), int(batch["padding_mask"].numpy().sum())
    start = time.perf_counter()
    for step, batch in enumerate(iterator, start=1):
        examples += int(batch["token_ids"].shape[0])
        tokens += int(batch["padding_mask"].numpy().sum())
        if step % 200 == 0:
            rss_max = max(rss_max, _current_rss_mb())
    elapsed = time.perf_counter() - start
    rss_end = _current_rss_mb()
    return {
        "file_bytes": os.path.getsize(path),
        "peak_rss_mb_before_stream": round(peak_before_stream, 1),
        "rss_mb_stream_start": round(rss_start, 1),
        "rss_mb_stream_max": round(max(rss_max, rss_end), 1),
        "rss_mb_stream_end": round(rss_end, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "examples": examples,
        "tokens": tokens,
        "seconds": round(elapsed, 1),
        "examples_per_second": round(examples / max(elapsed, 1e-9), 1),
    }


def memory_runs(args) -> list[dict]:
    from tf_metaling.tokenizers import WordPieceTokenizer

    os.makedirs(args.workdir, exist_ok=True)
    vocab_file = os.path.join(args.workdir, "generated_vocab.txt")
    WordPieceTokenizer.train({"en": generated_sentences(20000)}, vocab_size=args.vocab_size).save(vocab_file)
    results = []
    for size in [_parse_size(s) for s in args.sizes.split(",")]:
        path = os.path.join(args.workdir, f"generated_{_human(size)}.txt")
        start = time.perf_counter()
        write_text_file(path, size)
        generate_seconds = time.perf_counter() - start
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--_memory_worker",
            path,
            "--_vocab_file",
            vocab_file,
            "--batch_size",
            str(args.batch_size),
            "--sequence_length",
            str(args.sequence_length),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=False)
        if output.returncode != 0:
            raise RuntimeError(f"memory worker failed for {path}:\n{output.stderr[-3000:]}")
        result = json.loads(output.stdout.strip().splitlines()[-1])
        result["size"] = _human(size)
        result["generate_seconds"] = round(generate_seconds, 1)
        results.append(result)
        print(
            f"  streamed {result['size']}: RSS {result['rss_mb_stream_start']} -> max "
            f"{result['rss_mb_stream_max']} MB, process peak {result['peak_rss_mb']} MB "
            f"({result['examples']} examples in {result['seconds']}s)",
            flush=True,
        )
        if not args.keep_files:
            os.remove(path)
    return results


# ---------------------------------------------------------------- report
def print_tables(report: dict) -> None:
    info = report["throughput_info"]
    print(
        f"\nMLM pipeline throughput ({report['machine']['cpu_count']} CPU cores, batch "
        f"{report['settings']['batch_size']} x {report['settings']['sequence_length']}, "
        f"{info['corpus']}, vocab {info['tokenizer_vocab_size']})"
    )
    header = (
        f"{'batching':<13}{'packing':<10}{'examples/s':>12}{'tokens/s':>12}{'x consumption':>15}"
    )
    print(header)
    print("-" * len(header))
    for run in report["throughput"]:
        print(
            f"{run['batching']:<13}{run['packing']:<10}{run['examples_per_second']:>12.1f}"
            f"{run['tokens_per_second']:>12.0f}{run['ratio_to_consumption']:>15.1f}"
        )
    print(
        f"(consumption = {report['settings']['consumption']} examples/s; tokens/s counts real, "
        f"non-padding tokens; tokenizer training took {info['tokenizer_training_seconds']}s)"
    )
    if report.get("memory"):
        print("\nMemory while streaming a generated file to its end through the MLM pipeline")
        header = (
            f"{'file':<7}{'examples':>9}{'seconds':>9}{'RSS start MB':>14}{'RSS max MB':>12}"
            f"{'RSS end MB':>12}{'process peak MB':>17}"
        )
        print(header)
        print("-" * len(header))
        for run in report["memory"]:
            print(
                f"{run['size']:<7}{run['examples']:>9}{run['seconds']:>9.1f}"
                f"{run['rss_mb_stream_start']:>14.1f}{run['rss_mb_stream_max']:>12.1f}"
                f"{run['rss_mb_stream_end']:>12.1f}{run['peak_rss_mb']:>17.1f}"
            )
        print(
            "(RSS sampled every 200 batches during the stream; process peak includes "
            "TensorFlow start-up and tracing)"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--max_predictions", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per variant")
    parser.add_argument(
        "--consumption", type=float, default=None,
        help="examples/s training uses (default: measured on the small preset's JointAll step)",
    )
    parser.add_argument("--sizes", default="16M,128M,1G", help="memory run file sizes")
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--keep_files", action="store_true")
    parser.add_argument("--cache_dir", default=None, help="built-in corpus cache")
    parser.add_argument("--workdir", default=os.path.join(RESULTS, "work"))
    parser.add_argument("--output", default=os.path.join(RESULTS, "input_pipeline.json"))
    parser.add_argument("--_memory_worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_vocab_file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._memory_worker:
        result = memory_worker(
            args._memory_worker, args._vocab_file, args.batch_size, args.sequence_length
        )
        print(json.dumps(result))
        return 0

    report = {
        "benchmark": "input_pipeline",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine slows every figure; keep its trace.
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "batch_size": args.batch_size,
            "sequence_length": args.sequence_length,
            "max_predictions": args.max_predictions,
            "consumption": args.consumption,
        },
    }
    import tensorflow as tf

    report["machine"]["tensorflow"] = tf.__version__
    if args.consumption is None:
        print("measuring the training step's consumption ...", flush=True)
        report["consumption_measurement"] = measure_consumption(args)
        args.consumption = report["consumption_measurement"]["examples_per_second"]
    report["settings"]["consumption"] = args.consumption
    print("measuring throughput ...", flush=True)
    report["throughput"], report["throughput_info"] = throughput_runs(args)
    if not args.skip_memory:
        print("measuring memory ...", flush=True)
        report["memory"] = memory_runs(args)
        rss = [run["rss_mb_stream_max"] for run in report["memory"]]
        report["stream_rss_max_growth_mb_smallest_to_largest"] = round(rss[-1] - rss[0], 1)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    lowest = min(run["ratio_to_consumption"] for run in report["throughput"])
    report["target"] = {"min_ratio_to_consumption": 5.0, "lowest_ratio": lowest, "met": lowest >= 5.0}
    print_tables(report)
    print(f"slowest variant: {lowest}x the training step's consumption (target >= 5x: "
          f"{'met' if lowest >= 5.0 else 'NOT met'})")
    print(
        f"(load average at start {report['machine']['load_average_at_start']}, "
        f"at end {report['machine']['load_average_at_end']})"
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output + ".tmp", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(args.output + ".tmp", args.output)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
