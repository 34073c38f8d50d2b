"""Studies: the paper's comparison and the synthetic control, run from a `StudyConfig`.

- `comparison_study`: `ComparisonStudy`, the variants x languages x seeds of one run config;
- `synthetic_control`: `SyntheticControl`, the comparison where what languages share is known;
- `plan`: which runs a study trains, and each run's config;
- `runner`: training runs in worker processes, resuming;
- `evaluation`: every figure of a run (masked LM, retrieval, classification, tagging);
- `results`: the runs' records gathered; `tables`, `verdicts`, `capacity_curve`, `report`:
  what is printed and written from them;
- `study_directory`: the output directory and the configuration saved in it (``study.yaml``).

`open_study(config, output_dir)` returns the right one for a config.
"""

from __future__ import annotations

from tf_metaling.configs import StudyConfig
from tf_metaling.study.comparison_study import ComparisonStudy
from tf_metaling.study.synthetic_control import SyntheticControl


def open_study(config: StudyConfig, output_dir: str, log=None, allow_config_change: bool = False):
    """A `SyntheticControl` when ``config.control.enabled``, else a `ComparisonStudy`; ``.report(.run())`` runs it."""
    study_class = SyntheticControl if config.control.enabled else ComparisonStudy
    return study_class(config, output_dir, log=log, allow_config_change=allow_config_change)


__all__ = ["ComparisonStudy", "SyntheticControl", "open_study"]
