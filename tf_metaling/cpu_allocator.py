"""TensorFlow's pooling (BFC) CPU allocator for the processes that train.

By default TensorFlow allocates every CPU tensor with the C library's
``malloc``, which returns large freed blocks to the operating system and maps
them again on the next step: a 1200-step run of the control's small model
(batches of 256 x 14 tokens) took 5.1-5.4 million minor page faults, about
4,500 a step with its evaluations, each a kernel trap that zeroes a fresh
page. TensorFlow's own best-fit-with-coalescing allocator, the one it uses on
GPUs, keeps the memory and reuses it
(``TF_CPU_ALLOCATOR_USE_BFC=true``). Measured on the control's Mono ``en``
run (seed 0, 1200 steps, two runs at once on 2 cores, as the study's two
workers): 5.1-5.4 million page faults and 78-82 s with ``malloc``, 0.18 million
and 62-65 s with the pooling allocator, the same learning curve to the last
digit (docs/results.md; `benchmarks/cpu_allocator.py` repeats the comparison).

The allocator is chosen once a process, when TensorFlow creates its CPU device
(the first tensor), so `use_pooled_cpu_allocator` runs first in the trainers'
entry points and in the study's worker processes. A value already in the
environment wins: ``TF_CPU_ALLOCATOR_USE_BFC=false`` keeps ``malloc``. The
pool does not shrink: a process keeps its peak tensor memory until it exits.

Where TensorFlow turns oneDNN on by itself (x86 CPUs with AVX512_VNNI,
AVX512_BF16 or AMX; ``TF_ENABLE_ONEDNN_OPTS``), oneDNN's own CPU allocator
already pools memory and the setting changes nothing: measured on such a CPU,
a freed 256 MiB tensor stayed mapped with the setting true or false, and only
``TF_ENABLE_ONEDNN_OPTS=0`` gave it back. The setting matters on the other CPUs,
where TensorFlow leaves oneDNN off (the machine of the measurements above).
"""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def use_pooled_cpu_allocator() -> bool:
    """Asks for the pooling CPU allocator unless the environment says otherwise; returns whether it is asked.

    Takes effect only if this process has not created a TensorFlow tensor yet
    (`pooled_cpu_allocator_in_use` tells afterwards).
    """
    value = os.environ.setdefault(ENVIRONMENT_VARIABLE, "true")
    return value.strip().lower() in ("1", "true")


def pooled_cpu_allocator_in_use() -> bool:
    """Whether this process's CPU tensors come from TensorFlow's pooling allocator.

    Only the pooling allocators keep statistics (TensorFlow's BFC allocator, or
    oneDNN's where TensorFlow turns oneDNN on), so TensorFlow reports memory use
    for the CPU device exactly when one of them is in use.
    """
    import tensorflow as tf  # lazy: this module must not import TensorFlow before the allocator is chosen

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:  # "Allocator stats not available for device 'CPU:0'"
        return False
    return True
