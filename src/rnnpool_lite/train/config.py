"""``TrainConfig``: every setting of a ``fit`` run in one frozen, checked value.

The defaults are the paper's recipe (Appendix G): SGD with momentum 0.9 and weight decay 4e-5,
a cosine learning-rate decay from 0.05, optionally after a linear warm-up. A bad value fails when
the config is built, with a :class:`~rnnpool_lite.validate.ParameterError` naming the field, not
epochs later inside the loop. ``dataclasses.replace(config, lr=0.01)`` derives a variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnpool_lite import validate
from rnnpool_lite.op.compiled import KERNELS
from rnnpool_lite.train.execution import LAYOUTS, PRECISIONS, Layout, Precision
from rnnpool_lite.train.tasks import ClassificationTask, Task

# settings that must agree between a checkpoint and the run resuming from it
RESUME_FIELDS = ("epochs", "lr", "momentum", "weight_decay", "warmup_epochs", "batch_size", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one ``fit`` run.

    Attributes:
        epochs: passes over the training set.
        lr: peak learning rate (paper: 0.05 classification, 0.01 detection); 0 is allowed, as a
            control run whose weights stay at their initial values (BatchNorm statistics still
            follow the data).
        momentum, weight_decay: SGD's.
        warmup_epochs: linear warm-up before the cosine decay (paper: 5 for detection); fewer
            than ``epochs``.
        batch_size: the *global* batch; under ``torchrun`` each of W ranks takes
            ``batch_size / W`` samples (must divide evenly).
        task: loss, metrics and collation (default :class:`ClassificationTask`); use
            :class:`MultiLabelTask` or :class:`rnnpool_lite.detection.DetectionTask` for the others.
        seed: seeds shuffling, augmentation and dropout per epoch (see :mod:`.seeding`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; ``None`` picks the rank's GPU
            when there is one, else the CPU.
        num_workers: DataLoader worker processes (0: load in the training process).
        checkpoint: file written atomically after every epoch by rank 0 (kept as a ``Path``).
        resume: continue from an existing ``checkpoint`` (its ``RESUME_FIELDS`` must agree).
        restore_best: load the best epoch's weights (by ``task.monitor`` on ``val``, else on
            ``train``) into the model before returning.
        progress: a tqdm bar per epoch and one line of metrics after it.
        grad_clip: clip the gradients' global norm to this value (``None``: no clipping).
        layout: ``"auto"`` (``channels_last`` for models with a 2-D convolution on CPU and CUDA),
            ``"channels_last"`` or ``"nchw"`` (eager PyTorch's default, the slower path).
        precision: ``"auto"`` (float32: see :mod:`.execution` for why bf16 is not a default),
            ``"fp32"`` or ``"bf16"`` (autocast).
        rnnpool_kernel: what RNNPool layers run on while training and validating: ``"auto"`` (the
            C++ kernel where it builds here, else the torch path), ``"compiled"`` or ``"torch"`` (the
            off-switch: the whole-batch tensor ops of :mod:`rnnpool_lite.op.fused`); ``None`` reads
            ``$RNNPOOL_LITE_KERNEL`` (default ``"auto"``). See :mod:`rnnpool_lite.op.compiled`.
        max_steps: stop after this many optimizer steps in all (``None``: train every epoch). The
            learning-rate schedule still spans ``epochs``, so the steps taken are exactly the first
            ``max_steps`` of the full run (a replay of a recorded run checks them; see
            :mod:`rnnpool_lite.repro.replay`). The epoch cut short still gets its history row
            (training means over the steps it took) and is validated and offered to best-epoch
            tracking like any other, but no checkpoint is written for it: a checkpoint holds whole
            epochs, so a later run without ``max_steps`` resumes from the last complete one. Steps
            count from the start of the run, those before a resumed checkpoint included. Not a
            resume setting.
        keep_freed_memory: on the CPU, ask glibc to keep freed memory for the next step
            (:func:`rnnpool_lite.train.runtime.keep_freed_memory`, process-wide) instead of
            returning it to the system and page-faulting it in again every step, which RNNPool's
            large temporaries pay for most.

    Distributed training needs no setting: ``fit`` joins the process group that ``torchrun``
    describes in the environment, or one the caller initialised.
    """

    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: int = 0
    batch_size: int = 64
    task: Task = field(default_factory=ClassificationTask)
    seed: int = 0
    device: str | None = None
    num_workers: int = 0
    checkpoint: str | Path | None = None
    resume: bool = True
    restore_best: bool = True
    progress: bool = True
    grad_clip: float | None = None
    layout: Layout = "auto"
    precision: Precision = "auto"
    rnnpool_kernel: str | None = None
    max_steps: int | None = None
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {
            "epochs": validate.positive_int("epochs", self.epochs),
            "lr": validate.positive_float("lr", self.lr, allow_zero=True),
            "momentum": validate.fraction("momentum", self.momentum, include_one=False),
            "weight_decay": validate.positive_float("weight_decay", self.weight_decay, allow_zero=True),
            "warmup_epochs": validate.positive_int("warmup_epochs", self.warmup_epochs, minimum=0),
            "batch_size": validate.positive_int("batch_size", self.batch_size),
            "seed": validate.positive_int("seed", self.seed, minimum=0),
            "device": validate.device("device", self.device),
            "num_workers": validate.positive_int("num_workers", self.num_workers, minimum=0),
            "checkpoint": _optional_path("checkpoint", self.checkpoint),
            "grad_clip": None if self.grad_clip is None else validate.positive_float("grad_clip", self.grad_clip),
            "max_steps": None if self.max_steps is None else validate.positive_int("max_steps", self.max_steps),
        }
        if checked["warmup_epochs"] >= checked["epochs"]:
            validate.fail("warmup_epochs", self.warmup_epochs, f"fewer than epochs={self.epochs}")
        for name in ("resume", "restore_best", "progress", "keep_freed_memory"):
            validate.one_of(name, getattr(self, name), (True, False))
        validate.one_of("layout", self.layout, LAYOUTS)
        validate.one_of("precision", self.precision, PRECISIONS)
        validate.one_of("rnnpool_kernel", self.rnnpool_kernel, (None, *KERNELS))
        if not isinstance(self.task, Task):
            validate.fail("task", self.task, "an object with monitor, mode, collate_fn, loss and stats",
                          validate.ParameterTypeError)
        validate.one_of("task.mode", self.task.mode, ("max", "min"))
        for name, value in checked.items():  # normalised: ints, floats, a Path
            object.__setattr__(self, name, value)

    def resume_settings(self) -> dict[str, Any]:
        """The settings a checkpoint records and a resumed run must repeat."""
        return {name: getattr(self, name) for name in RESUME_FIELDS}


def _optional_path(name: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        validate.fail(name, value, "a file path or None", validate.ParameterTypeError)
    return Path(value)
