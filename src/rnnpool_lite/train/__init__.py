"""Training engine: ``fit`` (SGD + cosine, checkpoints, exact resume, DDP) and its tasks."""
from .checkpoint import load_checkpoint, save_checkpoint
from .fit import FitResult, choose_device, fit, to_device
from .schedule import cosine_lr
from .seeding import epoch_seed, seed_everything, seed_worker
from .min_hidden import HiddenSearch, power_of_two_pairs, rnnpool_parameters, smallest_hidden
from .one_shot import ONE_SHOT_OPERATORS, OneShotPoolClassifier
from .probe import RNNPoolProbe
from .tasks import ClassificationTask, MultiLabelTask, Task

__all__ = [
    "fit", "FitResult", "choose_device", "to_device", "cosine_lr", "save_checkpoint", "load_checkpoint",
    "seed_everything", "seed_worker", "epoch_seed", "ClassificationTask", "MultiLabelTask", "Task", "RNNPoolProbe",
    "OneShotPoolClassifier", "ONE_SHOT_OPERATORS", "smallest_hidden", "HiddenSearch", "power_of_two_pairs",
    "rnnpool_parameters",
]
