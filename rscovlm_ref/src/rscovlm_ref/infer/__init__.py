"""Inference: generation backends, the Zoom-in Chain engine, dataset evaluation with rsmetrics."""
