"""[detect]: turning frames into item events (motion/presence gate and item tracker)."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from pydantic import Field, field_validator


class DetectSection(Section):
    """Thresholds of the presence gate and the item tracker. Times are in stream seconds."""

    mode: Literal["items", "continuous"] = Field(
        "items",
        description="'items': one result per item that appears and settles; 'continuous': "
        "classify every Nth frame and publish when the label changes",
    )
    roi: tuple[float, float, float, float] | None = Field(
        None,
        description="region of interest [x0, y0, x1, y1] as fractions of the frame (0..1); "
        "default: the whole frame",
    )
    analysis_width: int = Field(
        160, ge=32, le=1920, description="frames are shrunk to this width for gating (cheap)"
    )
    pixel_threshold: int = Field(
        25, ge=1, le=255, description="grey-level difference that counts a pixel as changed"
    )
    min_area: float = Field(
        0.01, gt=0, lt=1, description="fraction of the ROI that must differ from the background"
    )
    still_fraction: float = Field(
        0.003,
        ge=0,
        lt=1,
        description="an item is still when fewer than this fraction of ROI pixels change between two frames",
    )
    settle_s: float = Field(0.3, ge=0, description="how long an item must stay still")
    clear_s: float = Field(0.3, ge=0, description="how long the scene must be empty again")
    frames_per_item: int = Field(3, ge=1, le=30, description="frames classified per item")
    combine: Literal["mean", "max"] = Field("mean", description="how the frames' scores are combined")
    crop: Literal["item", "frame"] = Field(
        "item",
        description="'item': classify the item's bounding box from the presence mask (plus "
        "margin); 'frame': the whole ROI",
    )
    crop_margin: float = Field(
        0.0,
        ge=0,
        le=2,
        description="extra margin on each side of the item box, as a fraction of its size (the "
        "mask's box already holds a few pixels of background; the reference model is most "
        "accurate with 0)",
    )
    background_rate: float = Field(
        0.05, gt=0, le=1, description="how fast the empty-scene background follows light changes"
    )
    max_item_s: float = Field(
        60.0,
        gt=0,
        description="an item present longer than this is absorbed into the background",
    )
    every_n: int = Field(5, ge=1, description="continuous mode: classify every Nth frame")
    publish_uncertain: bool = Field(
        True,
        description="publish results below model.min_confidence (flagged uncertain: true); "
        "false drops them (counted in stats)",
    )

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, roi: tuple[float, float, float, float] | None):
        if roi is None:
            return roi
        x0, y0, x1, y1 = roi
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError("roi must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1, 0 <= y0 < y1 <= 1")
        return roi
