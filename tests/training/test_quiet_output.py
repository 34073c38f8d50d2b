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
    command = [sys.executable, "-m", "trainers.experiments", "--preset=tiny", f"--corpus={corpus}",
               "--variants=joint_all", f"--output_dir={tmp_path / 'study'}",
               "--params_override=trainer.train_steps=4,trainer.checkpoint_interval=4,trainer.eval_interval=4"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GRPC_", "ABSL_"))}
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=900, env=environment)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    noisy = [line for line in output.splitlines() if any(re.search(p, line) for p in NATIVE_LOG_PATTERNS)]
    assert noisy == []
    assert re.search(r"\[1/1\] joint_all/seed0: done in \S+; elapsed \S+, about \S+ to go", output)
    assert "Retrieval accuracy@1, X -> en" in output and "table: " in output
    assert all(len(line) <= 100 for line in output.splitlines() if line.startswith("|"))
