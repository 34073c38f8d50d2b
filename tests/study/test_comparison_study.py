"""The comparison study runner: trains each (variant, language, seed) once and resumes."""

import io
import json
import os

import pytest

from tf_metaling.data.corpora import build_builtin_corpus
from tf_metaling.study import comparison_study
from tf_metaling.study.comparison_study import ComparisonStudy
from tf_metaling.study.plan import PlannedRun, run_name
from tf_metaling.study.study_directory import RESULTS_FILE, ConfigurationChangedError

from ..data.corpus_fixtures import write_fake_packages
from ..helpers import study_config

# A study_small run shrunk to seconds; the corpus is the fake built-in corpus.
TINY = {
    "model": {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "intermediate_dim": 32,
              "max_sequence_length": 16, "adapter_dim": 4, "dropout": 0.0, "attention_dropout": 0.0},
    "data": {"vocab_size": 300, "sequence_length": 16, "batch_size": 4, "max_predictions": 3,
             "eval_batches_per_language": 1, "eval_batch_size": 8, "shuffle_buffer": 50,
             "low_resource_size": 200},
    "trainer": {"train_steps": 4, "warmup_steps": 0, "steps_per_loop": 2, "checkpoint_interval": 4,
                "eval_interval": 4, "summary_interval": 2, "probe_interval": 0},
}


@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory):
    pins, downloader = write_fake_packages(str(tmp_path_factory.mktemp("packages")))
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    build_builtin_corpus(cache_dir, pins, downloader)
    return cache_dir


def _config(corpus_cache, **changes):
    run = {**TINY, "data": {**TINY["data"], "cache_dir": corpus_cache, "languages": ["en", "ar"]}}
    return study_config("study_small", {"variants": ["mono", "joint_all"], "seeds": [0], "run": run,
                                        "evaluation": {"retrieval_pairs": 8, "classification_train": 16},
                                        **changes})


def _study(corpus_cache, output_dir, allow_config_change=False, **changes):
    log = io.StringIO()
    return ComparisonStudy(_config(corpus_cache, **changes), output_dir, log=log,
                           allow_config_change=allow_config_change), log


def test_two_worker_processes_train_the_same_runs_to_the_same_figures(corpus_cache, tmp_path):
    # Each run is seeded; only the threads per process differ, so sums may round differently
    # in the last digits.
    serial, _ = _study(corpus_cache, str(tmp_path / "serial"), variants=["mono"])
    alone = serial.run()
    parallel, log = _study(corpus_cache, str(tmp_path / "parallel"), variants=["mono"], workers=2)
    in_parallel = parallel.run()
    assert "2 runs on 2 worker processes" in log.getvalue() and log.getvalue().count("done in") == 2
    for variant, languages in alone["records"]["mlm_loss"].items():
        for code, seeds in languages.items():
            assert in_parallel["records"]["mlm_loss"][variant][code]["0"]["value"] == pytest.approx(
                seeds["0"]["value"], rel=1e-4), (variant, code)
    assert in_parallel["runs"].keys() == alone["runs"].keys() and len(alone["runs"]) == 2


def test_runner_skips_finished_runs_and_retrains_only_the_missing_one(corpus_cache, tmp_path, monkeypatch):
    output_dir = str(tmp_path / "study")
    study, log = _study(corpus_cache, output_dir)
    trained = []
    real_run_pretraining = comparison_study.run_pretraining

    def counting_run_pretraining(config, model_dir, mode, log=None):
        trained.append(os.path.relpath(model_dir, os.path.join(output_dir, "runs")))
        return real_run_pretraining(config, model_dir, mode, log=log)

    monkeypatch.setattr(comparison_study, "run_pretraining", counting_run_pretraining)
    first = study.run()
    names = [run_name("mono", "en", 0), run_name("mono", "ar", 0), run_name("joint_all", None, 0)]
    assert trained == names
    # The per-language budget: the two-language run trains twice a Mono run's steps.
    for name, steps in zip(names, (4, 4, 8)):
        with open(os.path.join(output_dir, "runs", name, RESULTS_FILE)) as file:
            assert json.load(file)["step"] == steps
    assert set(first["records"]["mlm_loss"]) == {"mono", "joint_all"}
    assert set(first["records"]["mlm_loss"]["joint_all"]) == {"en", "ar"}

    # A restart trains nothing and reports the same numbers.
    trained.clear()
    again, log = _study(corpus_cache, output_dir)
    assert again.run() == first
    assert trained == []
    assert log.getvalue().count("finished earlier, skipped") == 3

    # A run that never finished (no results file) is the only one trained again.
    os.remove(os.path.join(output_dir, "runs", names[1], RESULTS_FILE))
    third, log = _study(corpus_cache, output_dir)
    resumed = third.run()
    assert trained == [names[1]]
    assert log.getvalue().count("finished earlier, skipped") == 2
    # The checkpoint at the last step was restored, so the run's numbers are the same.
    loss = resumed["records"]["mlm_loss"]["mono"]["ar"]["0"]["value"]
    assert loss == pytest.approx(first["records"]["mlm_loss"]["mono"]["ar"]["0"]["value"], rel=1e-6)

    # Another evaluation setting re-evaluates the trained runs (restored at their last step; no step more),
    # once the changed configuration is allowed into the directory.
    evaluation = {"retrieval_pairs": 6, "classification_train": 16}
    with pytest.raises(ConfigurationChangedError, match=r"evaluation.retrieval_pairs: 8 -> 6"):
        _study(corpus_cache, output_dir, evaluation=evaluation)[0].run()
    changed, log = _study(corpus_cache, output_dir, allow_config_change=True, evaluation=evaluation)
    changed.run()
    assert log.getvalue().count("finished earlier, skipped") == 0
    for name, steps in zip(names, (4, 4, 8)):
        with open(os.path.join(output_dir, "runs", name, RESULTS_FILE)) as file:
            results = json.load(file)
        assert results["step"] == steps and results["evaluation"]["retrieval_pairs"] == 6

    # The report: one table per metric (languages x variants, groups marked) and the interference report.
    paths = third.report(resumed)
    table = open(paths["table"], encoding="utf-8").read()
    assert "Held-out MLM loss" in table and "Held-out MLM perplexity" in table
    loss_en = resumed["records"]["mlm_loss"]["joint_all"]["en"]["0"]["value"]
    assert any(line.startswith("| en ") and f"{loss_en:.3f}" in line for line in table.splitlines())
    assert os.path.exists(os.path.join(paths["report"], "report.md"))
    # Every run kept its learning curve; the table says which converged; the report ends with the verdicts.
    assert set(resumed["runs"]) == set(names)
    assert all(run["curve"]["steps"][-1] == steps for run, steps in zip((resumed["runs"][n] for n in names),
                                                                       (4, 4, 8)))
    assert "Convergence of the runs: 0 of 3 converged" in table.replace("\n", " ")
    assert os.path.exists(os.path.join(output_dir, "curves.png"))
    verdicts = table[table.index("Verdicts on the paper's claims"):]
    assert all(f"- ({claim}) " in verdicts for claim in "abcdef")


def test_budgets_scale_steps_and_intervals_or_keep_them(corpus_cache, tmp_path):
    study, _ = _study(corpus_cache, str(tmp_path / "study"))
    mono = study.run_config(PlannedRun("mono", "ar", 0)).trainer
    pair = study.run_config(PlannedRun("joint_pair", "ar", 0)).trainer
    joint = study.run_config(PlannedRun("joint_all", None, 0)).trainer
    assert (mono.train_steps, pair.train_steps, joint.train_steps) == (4, 8, 8)
    assert (joint.checkpoint_interval, joint.eval_interval) == (8, 8)
    assert joint.steps_per_loop == mono.steps_per_loop == 2  # loop and summary cadence unchanged

    study.config.budget = "total"
    assert study.run_config(PlannedRun("joint_all", None, 0)).trainer.train_steps == 4
    with pytest.raises(ValueError, match="field budget: 'per_step' is not one of"):
        _study(corpus_cache, str(tmp_path / "other"), budget="per_step")


def test_finished_run_with_another_config_is_refused_not_mixed_in(corpus_cache, tmp_path):
    output_dir = str(tmp_path / "study")
    study, _ = _study(corpus_cache, output_dir, variants=["mono"])
    study.run()
    changed, _ = _study(corpus_cache, output_dir, allow_config_change=True, variants=["mono"])
    changed.config.run.trainer.learning_rate = 0.5
    with pytest.raises(ValueError, match=r"mono-en/seed0/config.yaml.*trainer.learning_rate"):
        changed.run()


def test_a_worker_ends_when_the_study_process_is_killed(tmp_path):
    """A study killed without cleanup (SIGKILL) does not leave its pool workers training on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "study.py"
    pid_file = tmp_path / "worker.pid"
    script.write_text(f'''
import multiprocessing, os, time

def work(path):
    from tf_metaling.study import runner
    runner._start_worker(1)  # the pool's initializer
    with open(path + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(300)  # a long run

if __name__ == "__main__":
    multiprocessing.get_context("spawn").Process(target=work, args=({str(pid_file)!r},)).start()
    time.sleep(300)
''')
    parent = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            assert parent.poll() is None and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()

        def running(pid):
            try:
                with open(f"/proc/{pid}/status", encoding="utf-8") as status:
                    return not any(line.startswith("State:") and "Z" in line for line in status)
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 20
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = running(worker)
        if alive:
            os.kill(worker, signal.SIGKILL)
        assert not alive, "the worker outlived its study's process"
    finally:
        if parent.poll() is None:
            parent.kill()
