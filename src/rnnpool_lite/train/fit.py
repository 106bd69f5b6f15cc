"""``fit``: the one training loop of the book, for classifiers and detectors, on 1 or N devices.

Paper recipe (Appendix G): SGD with momentum 0.9 and weight decay 4e-5, cosine learning-rate
decay, optionally a linear warm-up (5 epochs for the face detectors). The loop adds what a
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from rnnpool_lite.train.checkpoint import load_checkpoint, save_checkpoint
from rnnpool_lite.train.distributed import World, all_reduce_sums, current_world, init_from_env
from rnnpool_lite.train.lr_schedule import cosine_lr
from rnnpool_lite.train.seeding import epoch_seed, seed_everything, seed_worker
from rnnpool_lite.train.tasks import ClassificationTask, Task

# settings that must agree between a checkpoint and the run resuming from it
_RESUME_KEYS = ("epochs", "lr", "momentum", "weight_decay", "warmup_epochs", "batch_size", "seed")


@dataclass
class FitResult:
    """What ``fit`` returns. ``model`` holds the best epoch's weights when ``restore_best``."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None
    best_value: float | None
    best_state: dict[str, Tensor] | None
    checkpoint: Path | None


def choose_device(device: str | torch.device | None = None, world: World | None = None) -> torch.device:
    """``device`` if given, else the rank's CUDA device when CUDA is present, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        local = (world or current_world()).local_rank
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors nested in tuples, lists and dicts to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _state_to_cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    task: Task,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
    lr_at: Any,
    first_step: int,
    bar: tqdm | None,
    grad_clip: float | None,
) -> dict[str, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given. Returns local sums."""
    sums: dict[str, float] = {}
    training = optimizer is not None
    model.train(training)
    with torch.set_grad_enabled(training):
        for i, batch in enumerate(loader):
            inputs, targets = to_device(batch, device)
            if training:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(first_step + i)
            output = model(inputs)
            loss = task.loss(output, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {first_step + i}")
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
            stats = task.stats(_detach(output), targets)
            stats["loss"] = float(loss.detach()) * stats["count"]
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / max(sums['count'], 1):.4f}", refresh=False)
    return sums


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


def fit(
    model: nn.Module,
    train: Dataset,
    val: Dataset | None = None,
    epochs: int = 10,
    *,
    task: Task | None = None,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    warmup_epochs: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    restore_best: bool = True,
    progress: bool = True,
    grad_clip: float | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` for ``epochs`` epochs, validating on ``val`` after each.

    Args:
        task: loss, metrics and collation (default :class:`ClassificationTask`); use
            :class:`MultiLabelTask` or :class:`rnnpool_lite.detection.DetectionTask` for the others.
        lr: peak learning rate (paper: 0.05 classification, 0.01 detection); 0 is allowed, as
            a control run whose weights stay at their initial values (BatchNorm statistics still
            follow the data).
        warmup_epochs: linear warm-up length before the cosine decay (paper: 5 for detection).
        batch_size: the *global* batch; under ``torchrun`` each of W ranks takes
            ``batch_size / W`` samples (must divide evenly).
        device: default CUDA (the rank's GPU) when available, else CPU.
        seed: seeds shuffling, augmentation and dropout per epoch (see :mod:`.seeding`).
        checkpoint: file written atomically after every epoch by rank 0; with ``resume`` an
            existing file continues its run (the settings in ``_RESUME_KEYS`` must agree).
        restore_best: load the best epoch's weights (by ``task.monitor`` on ``val``, else on
            ``train``) into ``model`` before returning.

    Returns:
        :class:`FitResult` with the (unwrapped) model and the history DataFrame, one row per epoch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    warmup_epochs = _check_positive_int(warmup_epochs, "warmup_epochs", minimum=0)
    num_workers = _check_positive_int(num_workers, "num_workers", minimum=0)
    if warmup_epochs >= epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) must be smaller than epochs ({epochs})")
    if not lr >= 0 or not 0 <= momentum < 1 or weight_decay < 0:  # lr = 0: a control run, weights stay put
        raise ValueError(f"need lr >= 0, 0 <= momentum < 1, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
    task = task if task is not None else ClassificationTask()
    if not isinstance(task, Task):
        raise TypeError(f"task must provide monitor, mode, collate_fn, loss and stats; got {type(task).__name__}")
    if task.mode not in ("max", "min"):
        raise ValueError(f"task.mode must be 'max' or 'min', got {task.mode!r}")

    started_group = init_from_env()
    world = current_world()
    try:
        if batch_size % world.size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the world size {world.size}")
        device = choose_device(device, world)
        config = dict(epochs=epochs, lr=float(lr), momentum=float(momentum), weight_decay=float(weight_decay),
                      warmup_epochs=warmup_epochs, batch_size=batch_size, seed=int(seed))
        return _fit(model, train, val, task, config, device, world, num_workers,
                    Path(checkpoint) if checkpoint is not None else None, resume, restore_best, progress, grad_clip)
    finally:
        if started_group:
            dist.destroy_process_group()


def _fit(model, train, val, task, config, device, world, num_workers, checkpoint, resume, restore_best,
         progress, grad_clip) -> FitResult:
    epochs, seed = config["epochs"], config["seed"]
    local_batch = config["batch_size"] // world.size
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                weight_decay=config["weight_decay"])

    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"epoch": None, "value": None, "state": None}
    start_epoch = 0
    if checkpoint is not None and resume and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        saved = state["config"]
        clashes = {k: (saved.get(k), config[k]) for k in _RESUME_KEYS if saved.get(k) != config[k]}
        if clashes:
            raise ValueError(f"checkpoint {checkpoint} was written with other settings (saved, now): {clashes}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [dict(row) for row in state["history"]]
        best = dict(state["best"])
        start_epoch = int(state["epoch"])

    sampler = DistributedSampler(train, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed)
    steps_per_epoch = math.ceil(len(sampler) / local_batch)
    total_steps = epochs * steps_per_epoch
    warmup_steps = config["warmup_epochs"] * steps_per_epoch

    def lr_at(step: int) -> float:
        return cosine_lr(step, total_steps, config["lr"], warmup_steps)

    net: nn.Module = model
    if world.size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    val_loader = None
    if val is not None:
        # ranks take disjoint slices with no padding, so summed statistics are exact
        shard = Subset(val, range(world.rank, len(val), world.size))
        val_loader = DataLoader(shard, batch_size=local_batch, shuffle=False, num_workers=num_workers,
                                collate_fn=task.collate_fn, worker_init_fn=seed_worker)
    source = "val" if val is not None else "train"
    monitor = f"{source}_{task.monitor}"

    for epoch in range(start_epoch, epochs):
        seed_everything(epoch_seed(seed, epoch, world.rank))
        sampler.set_epoch(epoch)
        loader_rng = torch.Generator().manual_seed(epoch_seed(seed, epoch, world.rank))
        train_loader = DataLoader(train, batch_size=local_batch, sampler=sampler, num_workers=num_workers,
                                  collate_fn=task.collate_fn, worker_init_fn=seed_worker, generator=loader_rng,
                                  pin_memory=device.type == "cuda")
        bar = None
        if progress and world.is_main:
            bar = tqdm(total=steps_per_epoch + (len(val_loader) if val_loader else 0),
                       desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        tic = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch + 1, "lr": lr_at(epoch * steps_per_epoch)}
        sums = _run_epoch(net, train_loader, task, device, optimizer, lr_at, epoch * steps_per_epoch, bar, grad_clip)
        row.update(_means(all_reduce_sums(sums, device), "train"))
        if val_loader is not None:
            sums = _run_epoch(net, val_loader, task, device, None, lr_at, 0, bar, None)
            row.update(_means(all_reduce_sums(sums, device), "val"))
        row["seconds"] = time.perf_counter() - tic
        if bar is not None:
            bar.close()
        history.append(row)

        value = row[monitor]
        better = best["value"] is None or (value > best["value"] if task.mode == "max" else value < best["value"])
        if better:
            best = {"epoch": epoch + 1, "value": value, "state": _state_to_cpu(model.state_dict())}
        if checkpoint is not None and world.is_main:
            save_checkpoint({"epoch": epoch + 1, "config": config, "model": _state_to_cpu(model.state_dict()),
                             "optimizer": optimizer.state_dict(), "history": history, "best": best}, checkpoint)
        if world.size > 1:
            dist.barrier()
        if progress and world.is_main:
            shown = {k: round(v, 4) for k, v in row.items() if k not in ("epoch", "seconds")}
            tqdm.write(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v}" for k, v in shown.items()))

    if restore_best and best["state"] is not None:
        model.load_state_dict(best["state"])
    frame = pd.DataFrame(history).set_index("epoch") if history else pd.DataFrame()
    return FitResult(model=model, history=frame, best_epoch=best["epoch"], best_value=best["value"],
                     best_state=best["state"], checkpoint=checkpoint)
