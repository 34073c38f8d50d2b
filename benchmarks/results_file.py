"""What every benchmark script does with its figures: describe the machine, write JSON safely."""

from __future__ import annotations

import json
import os
import platform

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine_info(**extra) -> dict:
    import tensorflow as tf

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "load_average": load, **extra}


def write_results(path: str, report: dict) -> str:
    """Writes `report` as JSON through a temporary file and a rename; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
    os.replace(tmp, path)
    return path
