"""Configurations: one registry of named runs and studies, resolved the Model Garden way.

- `experiment_config`: `ExperimentConfig`, the dataclasses of one training run, and `validate`;
- `study_config`: `StudyConfig`, a study (variants x languages x seeds of one run config), and
  `validate_study`;
- `variants`: the paper's variants (Mono, JointPair, JointAll, +LS, +Meta LS) and the gradient-surgery
  treatments (+PCGrad, +GradVac, +LS+GradVac) as overrides;
- `registry`: ``--experiment=NAME`` -> a fresh config (`get_config`, `get_experiment`, `get_study`);
- `run_experiments`, `study_experiments`: the registered runs and studies.
"""

from tf_metaling.configs import run_experiments, study_experiments  # noqa: F401  (they register)
from tf_metaling.configs.experiment_config import (
    CORPORA,
    DEFAULT_LANGUAGES,
    PRECISIONS,
    STRATEGIES,
    TASKS,
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    MetaConfig,
    ModelConfig,
    RuntimeConfig,
    SurgeryConfig,
    TrainerConfig,
    validate,
)
from tf_metaling.configs.registry import EXPERIMENTS, get_config, get_experiment, get_study, register
from tf_metaling.configs.study_config import (
    ControlConfig,
    EvaluationConfig,
    StudyConfig,
    TransferConfig,
    validate_study,
)
from tf_metaling.configs.variants import (
    PAPER_VARIANTS,
    SURGERY_VARIANTS,
    VARIANT_NAMES,
    VARIANT_TITLES,
    VARIANTS,
    variant_overrides,
)

__all__ = [
    "CORPORA", "DEFAULT_LANGUAGES", "EXPERIMENTS", "PAPER_VARIANTS", "PRECISIONS", "STRATEGIES",
    "SURGERY_VARIANTS", "TASKS", "VARIANTS",
    "VARIANT_NAMES", "VARIANT_TITLES", "ControlConfig", "TransferConfig", "DataConfig", "EvaluationConfig", "ExperimentConfig",
    "FinetuneConfig", "MetaConfig", "ModelConfig", "RuntimeConfig", "StudyConfig", "SurgeryConfig",
    "TrainerConfig",
    "get_config", "get_experiment", "get_study", "register", "validate", "validate_study", "variant_overrides",
]
