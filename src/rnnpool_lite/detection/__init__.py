"""Single-shot face detection as RNNPool-Face trains it: S3FD matching, multibox loss, NMS, AP."""
from rnnpool_lite.detection.boxes import VARIANCES, box_iou, centres, corners, decode, encode, nms
from rnnpool_lite.detection.evaluate import COCO_IOU_THRESHOLDS, average_precision, wider_subset_ap
from rnnpool_lite.detection.inference import evaluate_detector, evaluate_subsets, predict
from rnnpool_lite.detection.loss import MultiBoxLoss, maxout_background
from rnnpool_lite.detection.matching import match_priors
from rnnpool_lite.detection.postprocess import Detections, detect
from rnnpool_lite.detection.task import DetectionTask, collate_detection

__all__ = [
    "VARIANCES", "box_iou", "centres", "corners", "decode", "encode", "nms", "COCO_IOU_THRESHOLDS", "average_precision",
    "wider_subset_ap", "evaluate_detector", "evaluate_subsets", "predict", "MultiBoxLoss", "maxout_background",
    "match_priors",
    "Detections", "detect", "DetectionTask", "collate_detection",
]
