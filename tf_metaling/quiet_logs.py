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

import atexit
import logging
import os
import re
import sys
import threading
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
    filter_native_stderr()


_FILTER = {}


def filter_native_stderr(patterns=NATIVE_LOG_PATTERNS) -> None:
    """Drops native log lines that bypass the log levels (e.g. Grappler's absl warnings) from fd 2.

    Some of TensorFlow's C++ code logs through absl directly ("W0000 ...
    loop_optimizer.cc ... Skipping loop optimization"), which
    TF_CPP_MIN_LOG_LEVEL does not reach. File descriptor 2 is replaced by a
    pipe; a thread copies every line that matches none of `patterns` to the
    original stderr, so Python's tracebacks and warnings still show. At exit
    the pipe is drained before the process ends. Called once per process.
    """
    if _FILTER:
        return
    try:
        original = os.dup(2)
    except OSError:  # no stderr to filter
        return
    matcher = re.compile("|".join(f"(?:{p})" for p in patterns))
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)

    def copy():
        with os.fdopen(read_end, "rb", buffering=0) as source:
            pending = b""
            while True:
                chunk = source.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not matcher.search(line.decode("utf-8", "replace")):
                        os.write(original, line + b"\n")
            if pending and not matcher.search(pending.decode("utf-8", "replace")):
                os.write(original, pending)

    thread = threading.Thread(target=copy, name="stderr-filter", daemon=True)
    thread.start()

    def drain():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's last write end: the thread sees EOF
        thread.join(timeout=5)

    atexit.register(drain)
    _FILTER.update(original=original, thread=thread)
