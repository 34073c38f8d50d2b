"""Training a study's runs, `workers` at a time, each in its own process; resuming where it stopped.

`run_studies` takes one or more studies (the synthetic control's conditions
share one pool), asks each for the runs it has not finished, and trains them:
in this process with one worker, or in a pool of spawned worker processes (the
costliest runs first, so the pool ends together), each with its share of the
cores. A run's figures do not depend on where it ran. A failed run stops the
rest and raises its error here. A worker ends with the study's process even
when that is killed without cleanup (`_exit_with_parent`); a run cut short
leaves its last checkpoint and resumes on the next start.

A study object offers ``output_dir``, ``worker_arguments()`` (picklable
arguments that rebuild it in a worker: ``type(study)(*arguments)``),
``prepare()``, ``pending_runs()``, ``run_one(run)``, ``after_runs()`` and
``collect()``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_studies(studies: list, workers: int = 1, log=None) -> list:
    """Trains every study's unfinished runs, `workers` at a time; returns each study's collected results."""
    log = log or sys.stdout
    say = lambda text: print(text, file=log, flush=True)  # noqa: E731
    if int(workers) < 1:
        raise ValueError(f"workers={workers}: expected a positive number of processes.")
    pending = []
    for study in studies:
        study.prepare()
        pending += [(study, run, cost) for run, cost in study.pending_runs()]
    several = len(studies) > 1

    def label(study, run):
        return f"{os.path.basename(study.output_dir)}/{run.name}" if several else run.name

    total = sum(cost for _, _, cost in pending)
    started = time.perf_counter()
    state = {"done": 0, "cost": 0}

    def finished(study, run, cost, seconds):
        state["done"] += 1
        state["cost"] += cost
        elapsed = time.perf_counter() - started
        remaining = elapsed / max(state["cost"], 1) * (total - state["cost"])
        say(f"[{state['done']}/{len(pending)}] {label(study, run)}: done in {format_seconds(seconds)}; "
            f"elapsed {format_seconds(elapsed)}, about {format_seconds(remaining)} to go")

    workers = min(int(workers), len(pending))
    if workers <= 1:
        for study, run, cost in pending:
            finished(study, run, cost, study.run_one(run))
    else:
        say(f"{len(pending)} runs on {workers} worker processes")
        threads = max(1, (os.cpu_count() or 1) // workers)
        order = sorted(pending, key=lambda item: -item[2])  # the longest first: the pool ends together
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(_train_in_worker, type(study), study.worker_arguments(), run): (study, run, cost)
                       for study, run, cost in order}
            try:
                for future in concurrent.futures.as_completed(futures):
                    finished(*futures[future], future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    for study in studies:
        study.after_runs()
    return [study.collect() for study in studies]


_WORKER_STUDIES: dict = {}


def _start_worker(threads: int) -> None:
    """A worker process: TensorFlow's pooling CPU allocator, thread pools sized to its share of the cores.

    A worker trains run after run: `keep_iterators_alive` spares it the wait that
    deleting a finished run's training iterators can cost. It also ends with the
    study's process (`_exit_with_parent`).
    """
    use_pooled_cpu_allocator()  # before the worker's first tensor
    # TensorFlow is imported here, after the allocator is chosen (it reads the setting once).
    import tensorflow as tf

    from tf_metaling.training.multilingual_trainer import keep_iterators_alive  # imports TensorFlow too

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keep_iterators_alive()
    _exit_with_parent()


def _exit_with_parent() -> None:
    """Ends this process as soon as the process that started it is gone.

    A study killed with SIGTERM or SIGKILL (a scheduler's time limit, `kill`) runs no
    cleanup, and its pool workers would train on, each to the end of its run (minutes of
    both cores, seen on the control). A daemon thread waits on the parent's sentinel
    (readable once the parent has exited) and ends the worker; a run cut short this way
    leaves its last checkpoint, and the study resumes it when started again.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        raise RuntimeError("_exit_with_parent() is for worker processes (multiprocessing children).")

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _train_in_worker(study_class, arguments: tuple, run) -> float:
    """In a worker process: one run of a study (the study is rebuilt once per process and directory)."""
    key = (study_class, arguments[1])
    study = _WORKER_STUDIES.get(key)
    if study is None:  # the worker's own study prints nothing: the study's process reports each run
        study = _WORKER_STUDIES[key] = study_class(*arguments, log=open(os.devnull, "w"))
    return study.run_one(run)
