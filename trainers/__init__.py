"""Command-line entry points (absl flags) for training, fine-tuning and analysis."""
