"""Training-step time of a small encoder as the number of languages L grows.

For each LS kind and L in {1, 2, 8, 32, 128}: one training step (forward,
backward, optimizer update) on the same mixed-language batch (32 sequences of
128 tokens, languages drawn uniformly from the L), median over timed steps.
The L values of one kind are timed in interleaved rounds (a few steps of each
L in turn), so a change of machine load during the run hits every L alike and
the L=128 / L=2 ratio stays a within-run comparison.
Per-example routing keeps compute per token independent of L; what can still
grow is the optimizer's work, so the adapter kind is also timed with Keras's
dense Adam, which updates every language's rows at every step.

    python benchmarks/routing.py              # full table (a few minutes)
    python benchmarks/routing.py --quick      # fewer steps and sizes

Writes benchmarks/results/routing.json. Target: adapters at L=128 take no
more than 1.15x the time at L=2 (with the row-sparse optimizer).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_metaling.models import MultilingualEncoder, MultilingualModel  # noqa: E402
from tf_metaling.optimizers import RowSparseAdam  # noqa: E402
from results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402

RESULTS = RESULTS_DIR


def make_step(model, optimizer):
    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(batch, training=True)["masked_lm_logits"]
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["mask_ids"], logits=logits)
            )
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def build_config(kind, num_languages, optimizer_name, args, batch_arrays):
    """The model, optimizer, compiled step and mixed-language batch of one (kind, L, optimizer)."""
    keras.utils.set_random_seed(0)
    encoder = MultilingualEncoder(
        vocabulary_size=args.vocabulary_size,
        languages=[f"l{i}" for i in range(num_languages)],
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_dim=4 * args.hidden_dim,
        max_sequence_length=args.sequence_length,
        language_specific=kind,
        adapter_dim=args.adapter_dim,
    )
    model = MultilingualModel(encoder)
    optimizer = RowSparseAdam(1e-4) if optimizer_name == "row_sparse_adam" else keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    rng = np.random.RandomState(1)
    batch = dict(batch_arrays)
    batch["language_ids"] = tf.constant(rng.randint(0, num_languages, size=args.batch_size), tf.int32)
    step = make_step(model, optimizer)
    for _ in range(args.warmup):
        step(batch)
    ls_parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables) - sum(
        int(np.prod(v.shape)) for v in MultilingualModel(
            MultilingualEncoder(**{**encoder.get_config(), "language_specific": None})
        ).trainable_variables
    )
    return step, batch, ls_parameters


def time_kind(kind, optimizer_name, languages, args, batch_arrays):
    """Times every L of one kind in interleaved rounds, so a change of machine load hits all L alike."""
    built = {n: build_config(kind, n, optimizer_name, args, batch_arrays) for n in languages}
    times = {n: [] for n in languages}
    rounds = max(1, args.steps // args.steps_per_round)
    for _ in range(rounds):
        for n in languages:
            step, batch, _ = built[n]
            for _ in range(args.steps_per_round):
                start = time.perf_counter()
                float(step(batch))
                times[n].append(time.perf_counter() - start)
    return [
        {
            "kind": kind,
            "num_languages": n,
            "optimizer": optimizer_name,
            "median_step_seconds": statistics.median(times[n]),
            "min_step_seconds": min(times[n]),
            "samples": len(times[n]),
            "language_specific_parameters": built[n][2],
        }
        for n in languages
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hidden_dim", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--adapter_dim", type=int, default=64)
    parser.add_argument("--vocabulary_size", type=int, default=8000)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per (kind, L)")
    parser.add_argument("--steps_per_round", type=int, default=1, help="steps per L before moving to the next L")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(RESULTS, "routing.json"))
    args = parser.parse_args()
    languages = [1, 2, 8, 32, 128]
    kinds = ["adapter", "ffn", "attention", "layer_norm"]
    if args.quick:
        args.steps, args.warmup, args.steps_per_round, languages = 6, 2, 2, [2, 128]

    rng = np.random.RandomState(0)
    batch_arrays = {
        "token_ids": tf.constant(rng.randint(5, args.vocabulary_size, (args.batch_size, args.sequence_length)), tf.int32),
        "padding_mask": tf.ones((args.batch_size, args.sequence_length), tf.int32),
        "mask_positions": tf.constant(
            np.stack([rng.choice(args.sequence_length, args.predictions, replace=False) for _ in range(args.batch_size)]),
            tf.int32,
        ),
        "mask_ids": tf.constant(rng.randint(5, args.vocabulary_size, (args.batch_size, args.predictions)), tf.int32),
    }
    configs = [(kind, "row_sparse_adam") for kind in kinds] + [("adapter", "keras_adam")]
    rows = []
    print(f"{'kind':<11}{'optimizer':<17}" + "".join(f"{'L=' + str(n):>10}" for n in languages) + f"{'L=128/L=2':>11}")
    for kind, optimizer_name in configs:
        results = time_kind(kind, optimizer_name, languages, args, batch_arrays)
        rows += results
        by_l = {result["num_languages"]: result["median_step_seconds"] for result in results}
        ratio = by_l[128] / by_l[2] if 128 in by_l and 2 in by_l else float("nan")
        print(
            f"{kind:<11}{optimizer_name:<17}"
            + "".join(f"{by_l[n] * 1000:>8.0f}ms" for n in languages)
            + f"{ratio:>11.3f}",
            flush=True,
        )
    summary = {}
    for kind, optimizer_name in configs:
        times = {r["num_languages"]: r["median_step_seconds"] for r in rows if r["kind"] == kind and r["optimizer"] == optimizer_name}
        if 128 in times and 2 in times:
            summary[f"{kind}/{optimizer_name}"] = times[128] / times[2]
    report = {
        "benchmark": "routing",
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "rows": rows,
        "ratio_L128_over_L2": summary,
        "target": {"adapter/row_sparse_adam": 1.15},
        "target_met": summary.get("adapter/row_sparse_adam", float("inf")) <= 1.15,
    }
    write_results(args.output, report)
    print(f"adapter L=128/L=2 = {summary.get('adapter/row_sparse_adam', float('nan')):.3f} "
          f"(target <= 1.15: {'met' if report['target_met'] else 'NOT met'}); wrote {args.output}")


if __name__ == "__main__":
    main()
