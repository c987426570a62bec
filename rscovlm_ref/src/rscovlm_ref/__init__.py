"""rscovlm_ref: the reference RSCoVLM trainer and inference engine (work in progress)."""

__version__ = "0.1.0"
