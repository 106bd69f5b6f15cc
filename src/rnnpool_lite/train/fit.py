"""``fit``: the one training loop of the book, for classifiers and detectors, on 1 or N devices.

Paper recipe (Appendix G, the defaults of :class:`TrainConfig`): SGD with momentum 0.9 and weight
decay 4e-5, cosine learning-rate decay, optionally a linear warm-up (5 epochs for the face
detectors). The loop adds what a
reproducible book needs: automatic device choice, a tqdm bar, a per-epoch history as a pandas
DataFrame, best-epoch tracking, an atomic checkpoint after every epoch, exact resumption, and
DistributedDataParallel when started by ``torchrun``.

Reproducibility contract (tested): with the same seed on the same machine, two runs give the same
numbers; a run interrupted at any point and resumed from its last checkpoint ends with the same
weights and history as a run that was never interrupted (CPU, bitwise). Distributed runs split
each *global* batch of ``batch_size`` samples over the ranks (``DistributedSampler`` hands rank
``r`` the samples ``r, r + W, ...`` of the epoch's permutation, so the union of the ranks' i-th
batches is the single-process i-th batch) and DDP averages the gradients: for losses that are a
mean over the batch and models without batch statistics, N processes compute the single-process
run up to float rounding. BatchNorm normalises with the statistics of each rank's local batch, so
N processes match one only for models without BatchNorm (or other batch statistics). On CUDA,
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` makes BatchNorm use the global batch; on the CPU
(gloo) it is no remedy: in torch 2.13 ``SyncBatchNorm`` synchronises only CUDA / XPU / HPU /
PrivateUse1 tensors and raises ``ValueError`` for CPU inputs in training mode (tested).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset, default_collate
from tqdm import tqdm

from rnnpool_lite.train.checkpoint import load_checkpoint, save_checkpoint
from rnnpool_lite.train.config import TrainConfig
from rnnpool_lite.train.distributed import World, all_reduce_sums, current_world, init_from_env
from rnnpool_lite.train.execution import Execution, choose_execution
from rnnpool_lite.train.lr_schedule import cosine_lr
from rnnpool_lite.train.runtime import keep_freed_memory
from rnnpool_lite.train.seeding import epoch_seed, seed_everything, seed_worker
from rnnpool_lite.train.tasks import Task


@dataclass
class FitResult:
    """What ``fit`` returns. ``model`` holds the best epoch's weights when ``restore_best``.

    ``step_losses`` is the training loss of every optimizer step this call took, in order (this
    rank's batch under ``torchrun``; a run resumed from a checkpoint lists only the steps after it).
    A replay of a recorded run compares its first few with the record.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None
    best_value: float | None
    best_state: dict[str, Tensor] | None
    checkpoint: Path | None
    step_losses: list[float]


def choose_device(device: str | torch.device | None = None, world: World | None = None) -> torch.device:
    """``device`` if given, else the rank's CUDA device when CUDA is present, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        local = (world or current_world()).local_rank
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


def _state_to_cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A CPU copy in the default layout, whatever layout the run trains in."""
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True) for k, v in state.items()}


def _detach(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, (list, tuple)):
        return type(output)(_detach(o) for o in output)
    return output


def _means(sums: dict[str, float], prefix: str) -> dict[str, float]:
    count = sums.get("count", 0.0)
    if count <= 0:
        raise ValueError(f"the {prefix} set produced no samples")
    return {f"{prefix}_{k}": v / count for k, v in sorted(sums.items()) if k != "count"}


@dataclass
class BestEpoch:
    """The best epoch so far by the task's monitored metric, with a CPU copy of its weights."""

    mode: str
    epoch: int | None = None
    value: float | None = None
    state: dict[str, Tensor] | None = None

    def offer(self, epoch: int, value: float, model: nn.Module) -> None:
        """Keep ``epoch`` if its ``value`` beats the best so far (ties keep the earlier epoch)."""
        if self.value is None or (value > self.value if self.mode == "max" else value < self.value):
            self.epoch, self.value, self.state = epoch, value, _state_to_cpu(model.state_dict())

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "value": self.value, "state": self.state}


@dataclass
class _Progress:
    """What a checkpoint carries from one run into the run that resumes it."""

    best: BestEpoch
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _settings(config: TrainConfig, execution: Execution) -> dict[str, Any]:
    """What a checkpoint records and a resumed run must repeat to continue it bitwise."""
    return config.resume_settings() | execution.settings()


def _resume(config: TrainConfig, execution: Execution, model: nn.Module,
            optimizer: torch.optim.Optimizer) -> _Progress:
    """Load ``config.checkpoint`` into ``model`` and ``optimizer`` when resuming, else start afresh."""
    fresh = _Progress(best=BestEpoch(config.task.mode))
    path = config.checkpoint
    if path is None or not config.resume or not Path(path).is_file():
        return fresh
    state = load_checkpoint(path)
    # checkpoints from before the kernel was recorded were all trained on the torch path
    saved, now = {"rnnpool_kernel": "torch", **state["config"]}, _settings(config, execution)
    clashes = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
    if clashes:
        raise ValueError(f"checkpoint {path} was written with other settings (saved, now): {clashes}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return _Progress(best=BestEpoch(config.task.mode, **state["best"]), start_epoch=int(state["epoch"]),
                     history=[dict(row) for row in state["history"]])


def _save(config: TrainConfig, execution: Execution, epoch: int, model: nn.Module,
          optimizer: torch.optim.Optimizer, progress: _Progress) -> None:
    """Write the state a resumed run needs, after ``epoch`` (1-based) finished."""
    assert config.checkpoint is not None
    save_checkpoint({"epoch": epoch, "config": _settings(config, execution), "model": _state_to_cpu(model.state_dict()),
                     "optimizer": optimizer.state_dict(), "history": progress.history,
                     "best": progress.best.as_dict()}, Path(config.checkpoint))


def _tensor_batches(dataset: TensorDataset, indices: Sequence[int], batch_size: int) -> Iterator[tuple[Tensor, ...]]:
    """The batches a DataLoader with ``default_collate`` would stack from ``dataset[i]``, taken by
    indexing its tensors once per batch instead of one Python call per item (same values, same order)."""
    order = torch.as_tensor(list(indices), dtype=torch.int64)
    for start in range(0, len(order), batch_size):
        pick = order[start:start + batch_size]
        yield tuple(t[pick] for t in dataset.tensors)


@dataclass
class _Loaders:
    """The epoch's batches: the training set reshuffled per epoch, this rank's slice of ``val``."""

    train: Dataset
    sampler: DistributedSampler
    val: Dataset | None  # this rank's slice
    local_batch: int
    config: TrainConfig
    world: World
    pin_memory: bool

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sampler) / self.local_batch)

    @property
    def val_steps(self) -> int:
        return 0 if self.val is None else math.ceil(len(self.val) / self.local_batch)  # type: ignore[arg-type]

    def _by_indexing(self, dataset: Dataset) -> bool:
        return (isinstance(dataset, TensorDataset) and self.config.num_workers == 0
                and self.config.task.collate_fn is default_collate)

    def train_epoch(self, epoch: int) -> Iterable[Any]:
        """Epoch ``epoch``'s shuffled batches, with workers seeded from (seed, epoch, rank)."""
        self.sampler.set_epoch(epoch)
        if self._by_indexing(self.train):
            return _tensor_batches(self.train, list(self.sampler), self.local_batch)  # type: ignore[arg-type]
        rng = torch.Generator().manual_seed(epoch_seed(self.config.seed, epoch, self.world.rank))
        return DataLoader(self.train, batch_size=self.local_batch, sampler=self.sampler,
                          num_workers=self.config.num_workers, collate_fn=self.config.task.collate_fn,
                          worker_init_fn=seed_worker, generator=rng, pin_memory=self.pin_memory)

    def val_batches(self) -> Iterable[Any]:
        assert self.val is not None
        if isinstance(self.val, Subset) and self._by_indexing(self.val.dataset):
            return _tensor_batches(self.val.dataset, self.val.indices, self.local_batch)  # type: ignore[arg-type]
        return DataLoader(self.val, batch_size=self.local_batch, shuffle=False, num_workers=self.config.num_workers,
                          collate_fn=self.config.task.collate_fn, worker_init_fn=seed_worker)


def _loaders(train: Dataset, val: Dataset | None, config: TrainConfig, world: World,
             device: torch.device) -> _Loaders:
    sampler: DistributedSampler = DistributedSampler(train, num_replicas=world.size, rank=world.rank, shuffle=True,
                                                     seed=config.seed)
    # ranks take disjoint slices of val with no padding, so summed statistics are exact
    shard = None if val is None else Subset(val, range(world.rank, len(val), world.size))  # type: ignore[arg-type]
    return _Loaders(train, sampler, shard, config.batch_size // world.size, config, world,
                    pin_memory=device.type == "cuda")


def train_step(model: nn.Module, inputs: Any, targets: Any, task: Task, execution: Execution,
               optimizer: torch.optim.Optimizer | None, grad_clip: float | None = None) -> tuple[Any, Tensor]:
    """Forward, loss and (with an ``optimizer``) one SGD update; returns the output and the loss.

    ``inputs`` and ``targets`` are on the device already (``execution.inputs``)."""
    with execution.forward_context():
        output = model(inputs)
        loss = task.loss(output, targets)
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    return output, loss


def _run_epoch(model: nn.Module, batches: Iterable[Any], task: Task, execution: Execution,
               optimizer: torch.optim.Optimizer | None = None, lr_at: Callable[[int], float] | None = None,
               first_step: int = 0, bar: tqdm | None = None, grad_clip: float | None = None,
               max_batches: int | None = None, step_losses: list[float] | None = None) -> dict[str, float]:
    """One pass over ``batches`` (the first ``max_batches`` of them when given); trains when
    ``optimizer`` is given, appending each step's loss to ``step_losses``. Returns this rank's sums."""
    sums: dict[str, float] = {}
    training = optimizer is not None
    model.train(training)
    with torch.set_grad_enabled(training):
        for i, batch in enumerate(islice(batches, max_batches)):
            inputs, targets = execution.inputs(batch)
            if optimizer is not None and lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(first_step + i)
            output, loss = train_step(model, inputs, targets, task, execution, optimizer, grad_clip)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {first_step + i}")
            stats = task.stats(_detach(output), targets)
            step_loss = float(loss.detach())
            if step_losses is not None:
                step_losses.append(step_loss)
            stats["loss"] = step_loss * stats["count"]
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / max(sums['count'], 1):.4f}", refresh=False)
    return sums


def _epoch(net: nn.Module, loaders: _Loaders, config: TrainConfig, epoch: int, optimizer: torch.optim.Optimizer,
           lr_at: Callable[[int], float], execution: Execution, steps: int,
           step_losses: list[float]) -> dict[str, float]:
    """Train for the first ``steps`` steps of epoch ``epoch`` (0-based), validate, and return the
    history row (global means)."""
    world = loaders.world
    seed_everything(epoch_seed(config.seed, epoch, world.rank))
    train_batches = loaders.train_epoch(epoch)
    bar = None
    if config.progress and world.is_main:
        bar = tqdm(total=steps + loaders.val_steps,
                   desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
    tic = time.perf_counter()
    first_step = epoch * loaders.steps_per_epoch
    row: dict[str, float] = {"epoch": epoch + 1, "lr": lr_at(first_step)}
    sums = _run_epoch(net, train_batches, config.task, execution, optimizer, lr_at, first_step, bar,
                      config.grad_clip, steps, step_losses)
    row.update(_means(all_reduce_sums(sums, execution.device), "train"))
    if loaders.val is not None:
        sums = _run_epoch(net, loaders.val_batches(), config.task, execution, bar=bar)
        row.update(_means(all_reduce_sums(sums, execution.device), "val"))
    row["seconds"] = time.perf_counter() - tic
    if bar is not None:
        bar.close()
    return row


def _log(row: dict[str, float], epochs: int) -> None:
    shown = {k: round(v, 4) for k, v in row.items() if k not in ("epoch", "seconds")}
    tqdm.write(f"epoch {int(row['epoch'])}/{epochs} " + " ".join(f"{k}={v}" for k, v in shown.items()))


def fit(model: nn.Module, train: Dataset, val: Dataset | None = None, config: TrainConfig | None = None) -> FitResult:
    """Train ``model`` on ``train`` with ``config`` (default :class:`TrainConfig`), validating on ``val``
    after each epoch.

    Returns:
        :class:`FitResult` with the (unwrapped) model and the history DataFrame, one row per epoch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    started_group = init_from_env()
    try:
        world = current_world()
        if config.batch_size % world.size:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the world size {world.size}")
        return _train(model, train, val, config, world, choose_device(config.device, world))
    finally:
        if started_group:
            dist.destroy_process_group()


def _train(model: nn.Module, train: Dataset, val: Dataset | None, config: TrainConfig, world: World,
           device: torch.device) -> FitResult:
    execution = choose_execution(model, device, config.layout, config.precision, config.rnnpool_kernel)
    execution.prepare(model)
    if config.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()
    optimizer = execution.sgd(model, config.lr, config.momentum, config.weight_decay)
    progress = _resume(config, execution, model, optimizer)
    loaders = _loaders(train, val, config, world, device)
    steps = loaders.steps_per_epoch
    lr_at = partial(cosine_lr, total_steps=config.epochs * steps, base_lr=config.lr,
                    warmup_steps=config.warmup_epochs * steps)
    net: nn.Module = model
    if world.size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    monitor = f"{'val' if val is not None else 'train'}_{config.task.monitor}"
    total_steps = config.epochs * steps if config.max_steps is None else min(config.max_steps, config.epochs * steps)
    step_losses: list[float] = []

    for epoch in range(progress.start_epoch, config.epochs):
        epoch_steps = min(steps, total_steps - epoch * steps)
        if epoch_steps <= 0:
            break
        row = _epoch(net, loaders, config, epoch, optimizer, lr_at, execution, epoch_steps, step_losses)
        progress.history.append(row)
        progress.best.offer(epoch + 1, row[monitor], model)
        if config.checkpoint is not None and world.is_main and epoch_steps == steps:
            _save(config, execution, epoch + 1, model, optimizer, progress)
        if world.size > 1:
            dist.barrier()
        if config.progress and world.is_main:
            _log(row, config.epochs)

    execution.release(model)
    best = progress.best
    if config.restore_best and best.state is not None:
        model.load_state_dict(best.state)
    frame = pd.DataFrame(progress.history).set_index("epoch") if progress.history else pd.DataFrame()
    return FitResult(model=model, history=frame, best_epoch=best.epoch, best_value=best.value,
                     best_state=best.state, checkpoint=None if config.checkpoint is None else Path(config.checkpoint),
                     step_losses=step_losses)
