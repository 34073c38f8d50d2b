"""A study's output directory, and the configuration that travels with its results.

    <output_dir>/study.yaml              the resolved StudyConfig (written before the first run)
    <output_dir>/vocab.txt               the shared vocabulary (pretraining studies)
    <output_dir>/runs/<run>/             each run's model directory; results.json once evaluated
    <output_dir>/table.md, results.json  the tables and the collected results (every report)
    <output_dir>/curves.png, report/     learning curves, the interference report

`StudyDirectory.claim(config)` writes ``study.yaml`` the first time; when the
directory already has one that differs (other than in fields that change no
figure, such as ``workers``), it refuses with the differing keys, old and new,
unless `allow_changes`: a rerun with other settings must not mix its results
into another configuration's. The same configuration resumes: finished runs
are skipped (and each finished run is also checked against the config it
would be trained with now).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import yaml

from tf_metaling.atomic_files import atomic_write_text
from tf_metaling.configs import StudyConfig
from tf_metaling.configs.study_config import RESULT_NEUTRAL_FIELDS
from tf_metaling.study.plan import run_name

STUDY_FILE = "study.yaml"
RESULTS_FILE = "results.json"  # a run's figures, and the study's collected results
TABLE_FILE = "table.md"


class ConfigurationChangedError(ValueError):
    """A study directory holds results of another configuration."""


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_differences(saved: dict, current: dict, ignore=RESULT_NEUTRAL_FIELDS,
                       defaults: Optional[dict] = None) -> dict:
    """``{dotted key: (saved value, current value)}`` of the keys whose values differ.

    `defaults`: the config class's default values; a key the saved config lacks (a field added
    to the class since) counts as its default, so a new field at its default changes nothing.
    """
    old, new = {**flatten(defaults or {}), **flatten(saved)}, flatten(current)
    return {key: (old.get(key, "(absent)"), new.get(key, "(absent)")) for key in sorted(set(old) | set(new))
            if key not in ignore and old.get(key, "(absent)") != new.get(key, "(absent)")}


class StudyDirectory:
    """The paths of one study's output directory, and its saved configuration."""

    def __init__(self, output_dir: str):
        self.root = os.path.abspath(output_dir)

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, STUDY_FILE)

    def run_dir(self, variant, language, seed) -> str:
        return os.path.join(self.root, "runs", run_name(variant, language, seed))

    def results_path(self, variant, language, seed) -> str:
        return os.path.join(self.run_dir(variant, language, seed), RESULTS_FILE)

    def saved_config(self) -> Optional[dict]:
        """The saved configuration as a dict (None before the first run)."""
        if not os.path.exists(self.config_path):
            return None
        with open(self.config_path, encoding="utf-8") as file:
            return yaml.safe_load(file)

    def claim(self, config: StudyConfig, allow_changes: bool = False) -> dict:
        """Writes ``study.yaml``, or checks it against `config`; returns the differences allowed (if any).

        Raises:
            ConfigurationChangedError: the saved configuration differs and not `allow_changes`.
        """
        current = config.as_dict()
        saved = self.saved_config()
        differences = ({} if saved is None else
                       config_differences(saved, current, defaults=StudyConfig().as_dict()))
        if differences and not allow_changes:
            listed = "\n".join(f"  {key}: {old!r} -> {new!r}" for key, (old, new) in differences.items())
            raise ConfigurationChangedError(
                f"{self.config_path}: this directory holds a study of another configuration; these keys "
                f"differ (saved -> now):\n{listed}\nUse a new --output_dir, or --allow_config_change to "
                "continue here with the new configuration (finished runs whose own config differs are still "
                "refused).")
        if saved is None or saved != current:
            os.makedirs(self.root, exist_ok=True)
            atomic_write_text(self.config_path, yaml.safe_dump(current, sort_keys=False))
        return differences

    def read_results(self, variant, language, seed) -> Optional[dict]:
        """A run's results.json (None when the run has not finished)."""
        path = self.results_path(variant, language, seed)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            return json.load(file)

    def write_results(self, variant, language, seed, results: dict) -> str:
        return atomic_write_text(self.results_path(variant, language, seed), json.dumps(results))
