"""fit under DistributedDataParallel: 2 CPU processes (gloo) compute the 1-process run."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from rnnpool_lite.train import TrainConfig, fit


def dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long())


def model() -> nn.Module:
    # no BatchNorm / dropout: those see the local batch only, by design of DDP
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def run_fit(**kw):
    # device="cpu": gloo on CPU is what this test compares; on a GPU machine each rank would take cuda:rank
    return fit(model(), dataset(), dataset(),
               TrainConfig(epochs=3, batch_size=16, lr=0.2, seed=7, progress=False, device="cpu", **kw))


def _worker(rank: int, world: int, port: int, out: str) -> None:
    # the variables torchrun sets; fit starts (and ends) the gloo process group from them
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    result = run_fit(checkpoint=os.path.join(out, "ck.pt"))
    assert not dist.is_initialized()
    if rank == 0:
        torch.save({"state": result.model.state_dict(),
                    "history": result.history.drop(columns="seconds").to_dict("list")},
                   os.path.join(out, "result.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "result.pt", weights_only=True)
    single = run_fit()
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-6)
    expected = single.history.drop(columns="seconds").to_dict("list")
    assert ddp["history"].keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(torch.tensor(ddp["history"][key]), torch.tensor(expected[key]),
                                   rtol=1e-5, atol=1e-6)
    # rank 0 wrote the checkpoint, with the full run's history
    assert len(torch.load(tmp_path / "ck.pt", weights_only=True)["history"]) == 3
    # the run learned something: not a trivially equal pair of untrained models
    assert single.history["train_loss"].iloc[-1] < 0.8 * single.history["train_loss"].iloc[0]
    assert not torch.equal(single.model.state_dict()["0.weight"], model().state_dict()["0.weight"])


def test_sync_batchnorm_refuses_cpu_tensors(tmp_path):
    """Why DDP-on-CPU runs of BatchNorm models differ from one process (fit's docstring): in torch
    2.13 SyncBatchNorm synchronises only CUDA / XPU / HPU / PrivateUse1 tensors; in training mode
    with a process group up, a CPU input raises instead of falling back to local statistics."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        bn = nn.SyncBatchNorm(4).train()
        with pytest.raises(ValueError, match="SyncBatchNorm expected input tensor to be on GPU"):
            bn(torch.randn(8, 4, 3, 3))
        bn.eval()(torch.randn(8, 4, 3, 3))  # inference uses the running statistics: no sync, no error
    finally:
        dist.destroy_process_group()
