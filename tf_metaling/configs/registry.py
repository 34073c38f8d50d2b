"""The one registry of named configurations (``--experiment=NAME``), as Model Garden's `exp_factory`.

A name maps to a factory that returns a fresh config: an `ExperimentConfig`
(one training run: `trainers.pretrain`, `trainers.finetune`) or a
`StudyConfig` (a study: `trainers.experiments`). The factory's docstring
documents the entry (its first line is the description ``--list_experiments``
prints); `expected_time` is its measured wall time on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Callable

from official.modeling import hyperparams

from tf_metaling.configs.experiment_config import ExperimentConfig
from tf_metaling.configs.study_config import StudyConfig


@dataclasses.dataclass(frozen=True)
class RegisteredExperiment:
    """One registered name: its factory, what it is, and its measured time on 2 CPU cores."""

    name: str
    factory: Callable[[], hyperparams.Config]
    expected_time: str = ""

    @property
    def description(self) -> str:
        """The factory docstring's first paragraph, on one line."""
        doc = inspect.getdoc(self.factory) or ""
        return " ".join(doc.split("\n\n")[0].split())

    def build(self) -> hyperparams.Config:
        config = self.factory()
        if isinstance(config, StudyConfig):
            config.name = self.name
        return config

    @property
    def kind(self) -> str:
        return "study" if isinstance(self.factory(), StudyConfig) else "run"


EXPERIMENTS: dict[str, RegisteredExperiment] = {}


def register(name: str, expected_time: str = ""):
    """Registers the decorated factory under `name` (each name once)."""

    def decorator(factory):
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} registered twice")
        EXPERIMENTS[name] = RegisteredExperiment(name, factory, expected_time)
        return factory

    return decorator


def _unknown(name: str) -> KeyError:
    close = difflib.get_close_matches(name, EXPERIMENTS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return KeyError(f"Unknown experiment {name!r}.{hint} Registered: {', '.join(sorted(EXPERIMENTS))} "
                    "(--list_experiments describes them).")


def get_config(name: str) -> hyperparams.Config:
    """A fresh copy of the registered config `name` (a run's or a study's)."""
    if name not in EXPERIMENTS:
        raise _unknown(name)
    return EXPERIMENTS[name].build()


def get_experiment(name: str) -> ExperimentConfig:
    """A fresh `ExperimentConfig` of `name`; for a study, the configuration of its runs (``run``)."""
    config = get_config(name)
    return config.run if isinstance(config, StudyConfig) else config


def get_study(name: str) -> StudyConfig:
    """A fresh `StudyConfig` of `name`; raises naming the studies when `name` is a single run."""
    config = get_config(name)
    if not isinstance(config, StudyConfig):
        studies = sorted(n for n, entry in EXPERIMENTS.items() if entry.kind == "study")
        raise KeyError(f"Experiment {name!r} is a single run (trainers.pretrain / trainers.finetune), not a study; "
                       f"the studies are {', '.join(studies)}.")
    return config
