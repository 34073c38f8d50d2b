"""Studies: the paper's comparison and the synthetic control, run from a `StudyConfig`.

- `comparison_study`: `ComparisonStudy`, the variants x languages x seeds of one run config;
- `synthetic_control`: `SyntheticControl`, the comparison where what languages share is known;
- `transfer_study`: `TransferStudy`, cross-lingual transfer on a pretrained encoder (LS layers
  per language by MLM, English task, zero-shot swap, beside a probe and a full fine-tune);
  `transfer_report` writes its tables and verdict (f);
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
from tf_metaling.study.transfer_study import TransferStudy


def open_study(config: StudyConfig, output_dir: str, log=None, allow_config_change: bool = False):
    """A `SyntheticControl` (``control.enabled``), a `TransferStudy` (``transfer.enabled``) or a `ComparisonStudy`.

    ``.report(.run())`` runs it.
    """
    study_class = (SyntheticControl if config.control.enabled else
                   TransferStudy if config.transfer.enabled else ComparisonStudy)
    return study_class(config, output_dir, log=log, allow_config_change=allow_config_change)


__all__ = ["ComparisonStudy", "SyntheticControl", "TransferStudy", "open_study"]
