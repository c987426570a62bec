"""rsmetrics: fair, fast metrics for remote-sensing vision-language models."""

from rsmetrics.errors import InvalidInputError, RecordError, RSMetricsError
from rsmetrics.geometry import (
    as_boxes,
    box_to_quad,
    canonical_quad,
    hbb_to_quad,
    obb_to_quad,
    quad_to_hbb,
    quad_to_obb,
)

__version__ = "0.1.0"

__all__ = [
    "InvalidInputError",
    "RSMetricsError",
    "RecordError",
    "as_boxes",
    "box_to_quad",
    "canonical_quad",
    "hbb_to_quad",
    "obb_to_quad",
    "quad_to_hbb",
    "quad_to_obb",
]
