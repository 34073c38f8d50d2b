"""Keeping TensorFlow's own log lines out of a command's output (``--verbose`` brings them back).

TensorFlow's C++ runtime writes start-up notes and harmless errors to stderr
(oneDNN, CPU instructions, "failed call to cuInit" on a machine without a
GPU), and tf.function warns about retracing when a process builds many
models; in a study that is pages of noise around the findings.
`quiet_tensorflow_logs` must run BEFORE TensorFlow is imported (the C++ log
level is read once, from the environment): an entry point calls it first,
with ``verbose`` read from ``sys.argv`` (`verbose_requested`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Patterns of TensorFlow/XLA/gRPC native log lines (for tests of quiet output).
NATIVE_LOG_PATTERNS = (
    r"^[EWIF]\d{4} \d\d:\d\d:\d\d",  # absl / gRPC: E0000 00:00:..., W1203 07:55:10...
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [EWIF] ",  # TensorFlow C++: 2026-12-03 07:48:48.48: E ...
    r"oneDNN",
    r"cuInit",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"triggered tf\.function retracing",
    r"^WARNING:tensorflow:",
    r"^WARNING: All log messages before absl::InitializeLog",
)


def verbose_requested(argv=None) -> bool:
    argv = sys.argv if argv is None else argv
    return any(arg in ("--verbose", "--verbose=true", "--verbose=True", "--verbose=1") for arg in argv)


def quiet_tensorflow_logs(verbose: bool = False) -> None:
    """Silences TensorFlow's native and Python log output unless `verbose`."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # native: errors too (they are start-up notes here)
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass
