"""Training processes take TensorFlow's pooling CPU allocator; the user's environment wins."""

import os
import subprocess
import sys

import pytest

CHECK = """
import sys
{setup}
from tf_metaling.cpu_allocator import pooled_cpu_allocator_in_use
import tensorflow as tf
tf.ones([4])  # the first tensor: TensorFlow creates its CPU device and allocator
print("pooled" if pooled_cpu_allocator_in_use() else "malloc")
"""


def _environment(extra=None) -> dict:
    """The test's environment without the allocator setting, and with oneDNN off.

    Where TensorFlow turns oneDNN on by itself (x86 CPUs with AVX512_VNNI, AVX512_BF16 or
    AMX), oneDNN's own CPU allocator pools memory whatever TF_CPU_ALLOCATOR_USE_BFC says
    (measured here: a freed 256 MiB tensor stays mapped, and the CPU device reports memory
    statistics, with the setting true or false). The setting decides only with oneDNN off,
    which is TensorFlow's default on other CPUs, so that is where these checks run.
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    env.update(extra or {}, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    return env


def _allocator(setup: str, environment=None) -> str:
    env = _environment(environment)
    result = subprocess.run([sys.executable, "-c", CHECK.format(setup=setup)], capture_output=True, text=True,
                            env=env, cwd=os.getcwd(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[-1]


@pytest.mark.parametrize("entry_point", ["trainers.pretrain", "trainers.finetune", "trainers.experiments"])
def test_a_trainer_entry_point_makes_tensorflow_pool_cpu_memory(entry_point):
    assert _allocator(f"import {entry_point}") == "pooled"


def test_a_process_that_does_not_ask_keeps_tensorflows_default():
    """The check tells the two allocators apart (it would pass for any process otherwise)."""
    assert _allocator("import tf_metaling.study.runner") == "malloc"


def test_the_users_environment_wins():
    assert _allocator("import trainers.pretrain", {"TF_CPU_ALLOCATOR_USE_BFC": "false"}) == "malloc"


WORKER = """
import multiprocessing

def work(answers):
    import tf_metaling.study.runner as runner  # as unpickling the pool's initializer does
    runner._start_worker(1)  # the pool's initializer
    from tf_metaling.cpu_allocator import pooled_cpu_allocator_in_use
    import tensorflow as tf
    tf.ones([4])
    answers.put("pooled" if pooled_cpu_allocator_in_use() else "malloc")

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    answers = context.Queue()
    context.Process(target=work, args=(answers,)).start()
    print(answers.get(timeout=240))
"""


@pytest.mark.parametrize("environment, expected", [({}, "pooled"), ({"TF_CPU_ALLOCATOR_USE_BFC": "0"}, "malloc")])
def test_a_study_worker_asks_for_it_before_its_first_tensor(tmp_path, environment, expected):
    """The pool's initializer runs after the worker has imported the study, before its first tensor."""
    script = tmp_path / "study.py"
    script.write_text(WORKER)
    env = _environment(environment)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                            cwd=os.getcwd(), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == expected
