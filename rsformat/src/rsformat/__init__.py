"""rsformat: one schema for every remote-sensing vision-language dataset."""

from rsformat.features import features_for
from rsformat.records import (
    ContentPart,
    ConversationRecord,
    DetectionObject,
    DetectionRecord,
    GroundingRecord,
    Message,
    ToolCall,
    ZoomRecord,
)

__version__ = "0.1.0"

__all__ = [
    "ContentPart",
    "ConversationRecord",
    "DetectionObject",
    "DetectionRecord",
    "GroundingRecord",
    "Message",
    "ToolCall",
    "ZoomRecord",
    "features_for",
]
