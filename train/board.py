"""TrashNet's white poster board as a soft mask, so augmentation and the out-of-domain set can
put the item in front of other backgrounds (the board is the one thing every TrashNet photo shares,
and a model that keys on it fails in a dark bin).

The board is bright, unsaturated and touches the image border; the item is what is left.
"""

from __future__ import annotations

import cv2
import numpy as np

# Below / above these item fractions the mask is not trusted (an item filling the frame, like
# flattened cardboard, or a mask that ate the item): the whole photo counts as item.
MIN_ITEM_FRACTION = 0.03
MAX_ITEM_FRACTION = 0.97
# The border's median colour must look like the board (bright, unsaturated: OpenCV's 0..255 HSV
# scale); a photo whose border is cardboard or a magazine page has no board to remove.
BOARD_MAX_SATURATION = 45.0
BOARD_MIN_VALUE = 110.0


def item_alpha(rgb: np.ndarray) -> np.ndarray:
    """float32 (H, W) in 0..1: 1 on the item, 0 on the board, feathered edges."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    saturation = hsv[..., 1].astype(np.float32)
    value = hsv[..., 2].astype(np.float32)
    border = np.concatenate([value[0], value[-1], value[:, 0], value[:, -1]])
    border_sat = np.concatenate([saturation[0], saturation[-1], saturation[:, 0], saturation[:, -1]])
    board_value = float(np.median(border))
    board_sat = float(np.median(border_sat))
    if board_sat > BOARD_MAX_SATURATION or board_value < BOARD_MIN_VALUE:
        return np.ones(rgb.shape[:2], dtype=np.float32)  # the border is not the white board
    # Shadows on the board are darker but as unsaturated: they go with the board.
    candidate = (saturation < board_sat + 25.0) & (value > 0.5 * board_value)
    candidate = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, components = cv2.connectedComponents(candidate, connectivity=4)
    edge_labels = np.unique(
        np.concatenate([components[0], components[-1], components[:, 0], components[:, -1]])
    )
    board = np.isin(components, edge_labels[edge_labels > 0])
    item = cv2.morphologyEx((~board).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # White parts of an item (a white bottle, a label) look like board: the item is taken as the
    # convex hull of what is clearly not board, which restores them at the cost of a thin halo.
    points = cv2.findNonZero(item)
    if points is None:
        return central_ellipse(rgb.shape[:2])
    item = np.zeros_like(item)
    cv2.fillConvexPoly(item, cv2.convexHull(points), 1)
    fraction = float(item.mean())
    if fraction > MAX_ITEM_FRACTION:
        return np.ones(rgb.shape[:2], dtype=np.float32)
    if fraction < MIN_ITEM_FRACTION:  # a clear or white item the board test swallowed
        return central_ellipse(rgb.shape[:2])
    return cv2.GaussianBlur(item.astype(np.float32), (0, 0), 1.0)


def central_ellipse(shape: tuple[int, int]) -> np.ndarray:
    """Fallback mask when the item cannot be told from the board: TrashNet items sit near the
    centre, and keeping the whole photo would carry the board into every synthetic scene."""
    height, width = shape
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (width // 2, height // 2), (int(width * 0.32), int(height * 0.36)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), 2.0)


def composite(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The item over ``background`` (same size), uint8."""
    a = alpha[..., None]
    return np.clip(rgb * a + background * (1.0 - a), 0, 255).astype(np.uint8)
