"""The loops: training, evaluation, prediction, export (with checkpoints, sampling, stop signals)."""
