"""The study's command prints its findings, not TensorFlow's log lines (unless --verbose)."""

import os
import re
import subprocess
import sys

import pytest

from tf_metaling.quiet_logs import NATIVE_LOG_PATTERNS

from ..data.corpus_directory_fixtures import write_corpus_directory

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_experiments_command_prints_no_tensorflow_log_lines(tmp_path):
    corpus = write_corpus_directory(str(tmp_path / "corpus"), text_lines=60, task_sentences=20, ner=False,
                                    pos_languages=())
    command = [sys.executable, "-m", "trainers.experiments", "--experiment=study_tiny", f"--corpus={corpus}",
               "--variants=joint_all", f"--output_dir={tmp_path / 'study'}",
               "--params_override=run.trainer.train_steps=4,run.trainer.checkpoint_interval=4,"
               "run.trainer.eval_interval=4"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GRPC_", "ABSL_"))}
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=900, env=environment)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    noisy = [line for line in output.splitlines() if any(re.search(p, line) for p in NATIVE_LOG_PATTERNS)]
    assert noisy == []
    assert re.search(r"\[1/1\] joint_all/seed0: done in \S+; elapsed \S+, about \S+ to go", output)
    assert "Retrieval accuracy@1, X -> en" in output and "table: " in output
    assert all(len(line) <= 100 for line in output.splitlines() if line.startswith("|"))


def test_native_lines_that_bypass_the_log_level_are_dropped_and_the_rest_of_stderr_kept():
    # What Grappler prints through absl, whatever TF_CPP_MIN_LOG_LEVEL says; then a Python error.
    script = (
        "import os, sys\n"
        "from tf_metaling.quiet_logs import quiet_tensorflow_logs\n"
        "quiet_tensorflow_logs(False)\n"
        "os.write(2, b'W0000 00:00:1796317967.575552   29565 loop_optimizer.cc:934] Skipping loop\\n')\n"
        "os.write(2, b'a line of the program\\n')\n"
        "print('on stdout', flush=True)\n"
        "raise SystemExit('failed: the message of the error')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stdout == "on stdout\n"
    assert result.stderr == "a line of the program\nfailed: the message of the error\n"
