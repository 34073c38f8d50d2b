"""Shared test setup: quiet TensorFlow, two logical CPU devices, determinism."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from tf_metaling.cpu_allocator import use_pooled_cpu_allocator  # noqa: E402

use_pooled_cpu_allocator()  # the trainers' CPU allocator, before TensorFlow's first tensor

import tensorflow as tf  # noqa: E402

# Two logical CPU devices stand in for two replicas in distribution tests. This
# must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:  # devices already initialised by an earlier import
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpu_devices():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "two logical CPU devices are configured above"
    return devices


@pytest.fixture(scope="session")
def mirrored_strategy(two_cpu_devices):
    """One MirroredStrategy for the whole session: several strategies over the same
    devices in one process can mix up their collective instances."""
    return tf.distribute.MirroredStrategy(two_cpu_devices)
