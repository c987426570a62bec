"""rsmetrics: fair, fast metrics for remote-sensing vision-language models.

One documented protocol behind every number: AP and AP_nc (AP without
confidence scores) with explicit tie rules, mF1, grounding Acc@IoU, VQA and
classification accuracy, the LRS-VQA protocol, coco-caption BLEU / CIDEr-D /
ROUGE-L, and the parsers that turn VLM
text into boxes. Runtime dependencies: numpy and shapely.

Example:
    >>> from rsmetrics import ImageAnnotations, ImageDetections, evaluate_detection
    >>> gt = [ImageAnnotations("img", [[0, 0, 10, 10]], ["ship"], box_kind="hbb")]
    >>> pred = [ImageDetections("img", [[1, 0, 10, 10]], ["ship"], box_kind="hbb")]
    >>> evaluate_detection(pred, gt, ["ship"], preset="mmrotate").map
    1.0
"""

from rsmetrics.caption import CaptionResult, caption_scores, tokenize_caption
from rsmetrics.detection.ap import average_precision
from rsmetrics.detection.evaluate import DetectionEvaluator, evaluate_detection
from rsmetrics.detection.fair_compare import FairComparison, fair_compare, sweep_thresholds
from rsmetrics.detection.protocol import PRESETS, DetectionProtocol, get_protocol
from rsmetrics.detection.result import ClassResult, DetectionResult
from rsmetrics.detection.types import ImageAnnotations, ImageDetections
from rsmetrics.detection.vlm import ParseReport, detections_from_responses
from rsmetrics.errors import InvalidInputError, RecordError, RSMetricsError
from rsmetrics.geometry import (
    as_boxes,
    box_to_quad,
    canonical_quad,
    hbb_to_quad,
    obb_to_quad,
    quad_to_hbb,
    quad_to_obb,
    scale_boxes,
)
from rsmetrics.grounding import GroundingResult, grounding_accuracy, score_grounding_answers
from rsmetrics.io import ReadReport
from rsmetrics.iou import box_iou, box_iou_pairs, hbb_iou, poly_iou, rbox_iou
from rsmetrics.labels import DOTA_V1_CLASSES, DOTA_V2_CLASSES, DOTA_V15_CLASSES, LabelVocabulary, normalize_label
from rsmetrics.merge import merge_patch_detections, parse_patch_name, polygon_nms
from rsmetrics.parsers import PARSERS, Frame, ParsedBoxes, parse_response
from rsmetrics.text import (
    classification_accuracy,
    extract_choice,
    lrsvqa_scores,
    match_answer,
    multiple_choice_accuracy,
    normalize_answer,
    vqa_accuracy,
)

__version__ = "0.1.0"

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V2_CLASSES",
    "DOTA_V15_CLASSES",
    "PARSERS",
    "PRESETS",
    "CaptionResult",
    "ClassResult",
    "DetectionEvaluator",
    "DetectionProtocol",
    "DetectionResult",
    "FairComparison",
    "Frame",
    "GroundingResult",
    "ImageAnnotations",
    "ImageDetections",
    "InvalidInputError",
    "LabelVocabulary",
    "ParseReport",
    "ParsedBoxes",
    "RSMetricsError",
    "ReadReport",
    "RecordError",
    "as_boxes",
    "average_precision",
    "box_iou",
    "box_iou_pairs",
    "box_to_quad",
    "canonical_quad",
    "caption_scores",
    "classification_accuracy",
    "detections_from_responses",
    "evaluate_detection",
    "extract_choice",
    "fair_compare",
    "get_protocol",
    "grounding_accuracy",
    "hbb_iou",
    "hbb_to_quad",
    "lrsvqa_scores",
    "match_answer",
    "merge_patch_detections",
    "multiple_choice_accuracy",
    "normalize_answer",
    "normalize_label",
    "obb_to_quad",
    "parse_patch_name",
    "parse_response",
    "poly_iou",
    "polygon_nms",
    "quad_to_hbb",
    "quad_to_obb",
    "rbox_iou",
    "scale_boxes",
    "score_grounding_answers",
    "sweep_thresholds",
    "tokenize_caption",
    "vqa_accuracy",
]
