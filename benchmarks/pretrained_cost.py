"""Cost of +Meta LS fine-tuning on a base-size pretrained encoder: step time and peak memory.

A base-size XLM-R-shaped encoder (12 layers x 768, 12 heads, FFN 3072, 512
positions, vocabulary 250,002, padding id 1, post-LN, GELU, eps 1e-5: the shapes
`tf_metaling.models.pretrained` converts an ``xlm_roberta_base`` preset to) with
random weights, adapters (r=64) in every block and a sentence classification
head, sequence length 128. For each choice of trained weights
(``finetune.train_weights``: ``all``, and ``language_specific_and_heads`` =
adapters + head on a frozen encoder) the same model is timed doing

- plain: one ordinary fine-tuning step (JointAll+LS, the baseline), and
- meta:  one +Meta LS iteration (the ordinary step plus the exact meta update:
  look-ahead step, meta loss on a batch holding every language, second-order
  gradient to the training language's LS weights),

in interleaved rounds (each round runs every variant once) after tracing and
warm-up, so load changes on the shared machine hit all variants alike.

Peak memory is TensorFlow's CPU allocator peak (`tf.config.experimental.
get_memory_info`) during one call, above what was allocated before it, plus the
variant's own state: the model's variables and the optimizer slots it uses
(the plain step has no meta optimizer). Both models live in one process, so
this per-variant sum, not the process peak, is what one training job needs.

    python benchmarks/pretrained_cost.py                 # base size, a few minutes on 2 cores
    python benchmarks/pretrained_cost.py --num_layers 2 --vocabulary_size 8000 --rounds 2  # quick check

Goal: meta <= 4x the time and <= 3x the peak memory of the plain step.
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

from results_file import RESULTS_DIR, machine_info, write_results  # noqa: E402
from tf_metaling.losses import sentence_classification_example_losses  # noqa: E402
from tf_metaling.meta.meta_step import MetaOptions, MetaStep  # noqa: E402
from tf_metaling.models import MultilingualEncoder, MultilingualModel, partition_variables  # noqa: E402
from tf_metaling.models.multilingual_model import SENTENCE_LOGITS  # noqa: E402
from tf_metaling.models.partition import select_trainable  # noqa: E402
from tf_metaling.optimizers import RowSparseAdam  # noqa: E402

TIME_GOAL, MEMORY_GOAL = 4.0, 3.0


def losses(outputs, batch):
    return sentence_classification_example_losses(outputs[SENTENCE_LOGITS], batch)


def make_batch(rng, args, language_ids):
    size = len(language_ids)
    lengths = rng.randint(args.sequence_length // 2, args.sequence_length + 1, size)
    mask = (np.arange(args.sequence_length)[None, :] < lengths[:, None]).astype("int32")
    token_ids = np.where(mask == 1, rng.randint(4, args.vocabulary_size, (size, args.sequence_length)), 1)
    return {
        "token_ids": tf.constant(token_ids, tf.int32),
        "padding_mask": tf.constant(mask),
        "language_ids": tf.constant(language_ids, tf.int32),
        "labels": tf.constant(rng.randint(0, 3, size), tf.int32),
    }


def build(args, train_weights):
    keras.utils.set_random_seed(0)
    encoder = MultilingualEncoder(
        vocabulary_size=args.vocabulary_size,
        languages=[f"l{i}" for i in range(args.languages)],
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        intermediate_dim=4 * args.hidden_dim,
        max_sequence_length=512,
        language_specific="adapter",
        adapter_dim=args.adapter_dim,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        pad_token_id=1,
    )
    model = MultilingualModel(encoder, masked_lm=False, sentence_class_names=["a", "b", "c"])
    select_trainable(model, train_weights)
    shared_optimizer = RowSparseAdam(1e-5)
    shared_optimizer.build(model.trainable_variables)
    meta_optimizer = RowSparseAdam(1e-4)
    meta_optimizer.build(list(partition_variables(model).language))
    step = MetaStep(model, losses, shared_optimizer, meta_optimizer,
                    MetaOptions(one_language_batches=True), output_names=(SENTENCE_LOGITS,))
    return step, shared_optimizer, meta_optimizer


def nbytes(variables) -> int:
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def step_peak_bytes(fn, fn_args) -> int:
    """Allocator peak during one call, above the bytes allocated before it."""
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden_dim", type=int, default=768)
    parser.add_argument("--num_layers", type=int, default=12)
    parser.add_argument("--num_heads", type=int, default=12)
    parser.add_argument("--adapter_dim", type=int, default=64)
    parser.add_argument("--vocabulary_size", type=int, default=250002)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--languages", type=int, default=4)
    parser.add_argument("--meta_examples_per_language", type=int, default=1)
    parser.add_argument("--train_weights", default="all,language_specific_and_heads")
    parser.add_argument("--rounds", type=int, default=3, help="each round times every variant once")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "pretrained_cost.json"))
    args = parser.parse_args()

    rng = np.random.RandomState(0)
    k = 0
    train = make_batch(rng, args, [k] * args.batch_size)
    lookahead = make_batch(rng, args, [k] * args.batch_size)
    meta = make_batch(rng, args, np.repeat(np.arange(args.languages), args.meta_examples_per_language))
    language = tf.constant(k)
    print(f"encoder {args.num_layers} x {args.hidden_dim}, vocabulary {args.vocabulary_size}, batch "
          f"{args.batch_size} x {args.sequence_length}, meta batch {args.languages} x "
          f"{args.meta_examples_per_language}; building and tracing ...", flush=True)

    functions, state, trace_seconds = {}, {}, {}
    for weights in args.train_weights.split(","):
        step, shared_optimizer, meta_optimizer = build(args, weights)
        model_bytes = nbytes(step.model.weights)
        plain_state = model_bytes + nbytes(shared_optimizer.variables)
        plain = tf.function(step.ordinary_step, autograph=False)
        full = tf.function(step.meta_step, autograph=False)
        for name, fn, fn_args, own in (
            (f"plain/{weights}", plain, (train,), plain_state),
            (f"meta/{weights}", full, (train, lookahead, meta, language), plain_state + nbytes(meta_optimizer.variables)),
        ):
            start = time.perf_counter()
            fn.get_concrete_function(*fn_args)
            trace_seconds[name] = time.perf_counter() - start
            functions[name] = (fn, fn_args)
            state[name] = own
        print(f"  built {weights}: {sum(int(np.prod(v.shape)) for v in step.model.trainable_variables):,} "
              f"trained of {sum(int(np.prod(v.shape)) for v in step.model.weights):,} parameters", flush=True)

    for fn, fn_args in functions.values():
        for _ in range(args.warmup):
            tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
    step_memory = {name: step_peak_bytes(fn, fn_args) for name, (fn, fn_args) in functions.items()}
    times = {name: [] for name in functions}
    for _ in range(args.rounds):
        for name, (fn, fn_args) in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
            times[name].append(time.perf_counter() - start)

    rows = {}
    header = f"{'variant':<40}{'median s':>10}{'state MiB':>11}{'step peak MiB':>15}{'total MiB':>11}"
    print("\n" + header)
    for name in functions:
        seconds = statistics.median(times[name])
        total = state[name] + step_memory[name]
        rows[name] = {"median_seconds": seconds, "samples": times[name], "trace_seconds": trace_seconds[name],
                      "state_bytes": state[name], "step_peak_bytes": step_memory[name], "peak_bytes": total}
        print(f"{name:<40}{seconds:>10.2f}{state[name] / 2**20:>11.0f}{step_memory[name] / 2**20:>15.0f}"
              f"{total / 2**20:>11.0f}")
    ratios, met = {}, {}
    print("\nmeta / plain (one run; time: medians, and the range of the per-round ratios)")
    for weights in args.train_weights.split(","):
        plain, meta_name = f"plain/{weights}", f"meta/{weights}"
        time_ratio = rows[meta_name]["median_seconds"] / rows[plain]["median_seconds"]
        per_round = [a / b for a, b in zip(times[meta_name], times[plain])]
        memory_ratio = rows[meta_name]["peak_bytes"] / rows[plain]["peak_bytes"]
        ratios[weights] = {"time": time_ratio, "time_per_round": per_round, "peak_memory": memory_ratio}
        met[weights] = {"time": time_ratio <= TIME_GOAL, "peak_memory": memory_ratio <= MEMORY_GOAL}
        print(f"  {weights:<30} time {time_ratio:.2f}x (rounds {min(per_round):.2f}-{max(per_round):.2f}; goal <= "
              f"{TIME_GOAL}: {'met' if met[weights]['time'] else 'NOT met'})   peak memory {memory_ratio:.2f}x "
              f"(goal <= {MEMORY_GOAL}: {'met' if met[weights]['peak_memory'] else 'NOT met'})")
    report = {
        "benchmark": "pretrained_cost",
        "machine": machine_info(),
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "rows": rows,
        "ratios_meta_over_plain": ratios,
        "goals": {"time": TIME_GOAL, "peak_memory": MEMORY_GOAL},
        "goals_met": met,
    }
    write_results(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
