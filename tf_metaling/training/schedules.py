"""Learning-rate schedules of the trainers."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_metaling")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then constant or linear decay to zero at `total_steps`.

    Args:
        peak: the learning rate after warmup.
        warmup_steps: steps of linear warmup (0: none).
        total_steps: the run's length (used by the decay).
        decay_to_zero: decay linearly to 0 after warmup instead of staying at `peak`.
    """

    def __init__(self, peak, warmup_steps=0, total_steps=1, decay_to_zero=False):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.decay_to_zero = bool(decay_to_zero)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.peak, tf.float32)
        if self.decay_to_zero:
            span = max(self.total_steps - self.warmup_steps, 1)
            rate = rate * tf.clip_by_value(1.0 - (step - self.warmup_steps) / span, 0.0, 1.0)
        if self.warmup_steps > 0:
            rate = rate * tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay_to_zero": self.decay_to_zero,
        }
