"""Training engine: ``fit`` (SGD + cosine, checkpoints, exact resume, DDP) and its tasks."""
from rnnpool_lite.train.checkpoint import load_checkpoint, save_checkpoint
from rnnpool_lite.train.config import TrainConfig
from rnnpool_lite.train.execution import Execution, choose_execution
from rnnpool_lite.train.fit import FitResult, choose_device, fit, train_step
from rnnpool_lite.train.lr_schedule import cosine_lr
from rnnpool_lite.train.min_hidden import (
    HiddenSearch,
    power_of_two_pairs,
    rnnpool_parameters,
    search_probe,
    smallest_hidden,
)
from rnnpool_lite.train.one_shot import ONE_SHOT_OPERATORS, OneShotPoolClassifier, fit_one_shot
from rnnpool_lite.train.probe import RNNPoolProbe
from rnnpool_lite.train.seeding import epoch_seed, seed_everything, seed_worker
from rnnpool_lite.train.tasks import ClassificationTask, MultiLabelTask, Task

__all__ = [
    "fit", "TrainConfig", "FitResult", "train_step", "Execution", "choose_execution", "choose_device", "cosine_lr",
    "save_checkpoint", "load_checkpoint", "seed_everything", "seed_worker", "epoch_seed", "ClassificationTask",
    "MultiLabelTask", "Task", "RNNPoolProbe", "OneShotPoolClassifier", "ONE_SHOT_OPERATORS", "smallest_hidden",
    "HiddenSearch", "power_of_two_pairs", "rnnpool_parameters", "search_probe", "fit_one_shot",
]
