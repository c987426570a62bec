"""The multi-task data engine: mixture configs, sampling, online sample building."""
