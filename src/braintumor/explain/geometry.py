"""Map a CAM from the model's input square back onto the original scan.

`Preprocess` crops the scan to the head (`Preprocess.crop_box`), pads the crop to a square and resizes it
to the model's size.
A CAM computed on the model input therefore lives in that square; to draw it on the scan a user
uploaded (and to score it against boxes given in the scan's pixels) the three steps are undone here.
Pixels outside the crop were never seen by the model, so the CAM is zero there.
"""

from __future__ import annotations

import cv2
import numpy as np

from braintumor.data.preprocess import Box


def cam_to_original(cam: np.ndarray, shape: tuple[int, int], box: Box) -> np.ndarray:
    """Undo resize, pad-to-square and crop: a (S, S) CAM -> a (H, W) CAM aligned with the original scan.

    Args:
        cam: CAM on the model input, 2-D, non-negative.
        shape: (H, W) of the original scan.
        box: the crop region, `Preprocess.crop_box` of the scan.

    Returns:
        float32 (H, W) in [0, 1], its maximum rescaled to 1 (the padding, which may have held the
        maximum, is cut off), all zeros where the model saw nothing or the CAM is empty.
    """
    x0, y0, x1, y1 = box
    cw, ch = x1 - x0, y1 - y0
    side = max(cw, ch)
    # Same split of the padding as `pad_to_square`: the extra pixel of an odd difference goes last.
    top, left = (side - ch) // 2, (side - cw) // 2
    square = cv2.resize(np.asarray(cam, dtype=np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    out = np.zeros(shape, dtype=np.float32)
    out[y0:y1, x0:x1] = np.maximum(square[top : top + ch, left : left + cw], 0)
    peak = float(out.max())
    if peak > 0:
        out /= peak
    return out
