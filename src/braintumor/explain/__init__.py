"""Class activation maps (LayerCAM, Grad-CAM, Grad-CAM++) on the original scan, overlays, and localisation
scoring against tumour boxes.

One code path serves the CLI, the evaluation report and the service::

    loaded = load_model(path)
    explainer = Explainer(loaded)   # once; method="layercam" by default
    exp = explainer.explain(read_scan(file))             # per scan; exp.cam has the scan's size
    png = overlay_png(scan, exp.cam, colorbar=True)
"""

from braintumor.explain.boxes import TumorBox, read_boxes
from braintumor.explain.cam import METHODS, Explainer, Explanation, explain_scan
from braintumor.explain.files import OverlayResult, write_overlays
from braintumor.explain.geometry import cam_to_original
from braintumor.explain.localization import DEFAULT_TOLERANCE_PX, bootstrap_ci, format_table, scan_scores
from braintumor.explain.overlay import overlay_image, overlay_png
from braintumor.explain.report import DEFAULT_NORMAL_CLASSES, localization_report, normal_classes

__all__ = [
    "DEFAULT_NORMAL_CLASSES",
    "DEFAULT_TOLERANCE_PX",
    "METHODS",
    "Explainer",
    "Explanation",
    "OverlayResult",
    "TumorBox",
    "bootstrap_ci",
    "cam_to_original",
    "explain_scan",
    "format_table",
    "localization_report",
    "normal_classes",
    "overlay_image",
    "overlay_png",
    "read_boxes",
    "scan_scores",
    "write_overlays",
]
