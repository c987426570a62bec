"""Adapters that run reference evaluators (installed from PyPI, test-only) beside ours."""
