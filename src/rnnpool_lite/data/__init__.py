"""Datasets for the book: probing sets, shipped real images, face scenes, Fashion-MNIST scenes, real-dataset loaders.

Every dataset is a ``torch.utils.data.Dataset`` with a ``classes`` list, deterministic given its
seed, and reads nothing from the network.
"""
from rnnpool_lite.data.fashion_mnist import FASHION_MNIST_CLASSES, fashion_mnist
from rnnpool_lite.data.fashion_scenes import FashionWakeWords
from rnnpool_lite.data.padded import PADDED_SETS, padded_images
from rnnpool_lite.data.probing import (
                      MULTI_LABEL_SETS,
                      ORIENTATION_CLASSES,
                      SHAPE_CLASSES,
                      MultiLineDataset,
                      OneLineDataset,
                      ShapesDataset,
                      multi_label_set,
                      permute_rows_and_columns,
                      shuffle_pixels,
)
from rnnpool_lite.data.real import (
                      IMAGENET10_SYNSETS,
                      ImageNet10,
                      ScutHead,
                      VisualWakeWords,
                      WiderFace,
                      load_image,
                      parse_wider_annotations,
)
from rnnpool_lite.data.scenes import FaceSceneDataset, FaceVsBackgroundDataset, detection_collate
from rnnpool_lite.data.shipped import (
                      BACKGROUND_NAMES,
                      DigitsDataset,
                      LFWFacesDataset,
                      background_photograph,
                      lfw_faces,
                      lfw_non_faces,
                      split_indices,
)

__all__ = [
    "ORIENTATION_CLASSES", "SHAPE_CLASSES", "OneLineDataset", "MultiLineDataset", "ShapesDataset",
    "permute_rows_and_columns", "shuffle_pixels", "FaceSceneDataset", "FaceVsBackgroundDataset", "detection_collate",
    "BACKGROUND_NAMES", "DigitsDataset", "LFWFacesDataset", "background_photograph", "lfw_faces",
    "lfw_non_faces", "split_indices", "IMAGENET10_SYNSETS", "ImageNet10", "ScutHead",
    "VisualWakeWords", "WiderFace", "load_image", "parse_wider_annotations", "FASHION_MNIST_CLASSES",
    "fashion_mnist", "FashionWakeWords", "MULTI_LABEL_SETS", "multi_label_set", "PADDED_SETS", "padded_images",
]
