"""The reference trainer: config, optimizer groups, loss, DeepSpeed configs, the training run."""
