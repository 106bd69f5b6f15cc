"""Single-shot face detection as RNNPool-Face trains it: S3FD matching, multibox loss, NMS, AP."""
from .boxes import VARIANCES, box_iou, centres, corners, decode, encode, nms
from .evaluate import average_precision, wider_subset_ap
from .inference import evaluate_detector, evaluate_subsets, predict
from .loss import MultiBoxLoss, maxout_background
from .matching import match_priors
from .postprocess import Detections, detect
from .task import DetectionTask, collate_detection

__all__ = [
    "VARIANCES", "box_iou", "centres", "corners", "decode", "encode", "nms", "average_precision",
    "wider_subset_ap", "evaluate_detector", "evaluate_subsets", "predict", "MultiBoxLoss", "maxout_background", "match_priors",
    "Detections", "detect", "DetectionTask", "collate_detection",
]
