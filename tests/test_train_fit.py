"""fit: learning, determinism, exact resume after an interruption, checkpoints, bad input."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from rnnpool_lite import RNNPool2d
from rnnpool_lite.op import fused
from rnnpool_lite.op.compiled import KERNEL_ENV, KernelPool, unavailable_reason
from rnnpool_lite.train import (
    MultiLabelTask,
    TrainConfig,
    choose_execution,
    cosine_lr,
    fit,
    load_checkpoint,
    save_checkpoint,
)
from rnnpool_lite.validate import ParameterError, ParameterTypeError


def blobs(n: int = 96, seed: int = 0) -> TensorDataset:
    """Three Gaussian classes in 8-D, a problem a tiny net learns in a few epochs."""
    centres = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 2.0
    g = torch.Generator().manual_seed(seed + 1)
    labels = torch.arange(n) % 3
    x = centres[labels] + 0.7 * torch.randn(n, 8, generator=g)
    return TensorDataset(x.view(n, 2, 2, 2), labels)


def tiny_net(seed: int = 0) -> nn.Module:
    """Conv + BatchNorm + dropout: running statistics and RNG use are part of what must resume."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(32, 3))


class Interrupting(Dataset):
    """Raises after ``limit`` reads, like a run killed in the middle of an epoch."""

    def __init__(self, base: Dataset, limit: int) -> None:
        self.base, self.limit, self.reads = base, limit, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.limit:
            raise KeyboardInterrupt("simulated interruption")
        return self.base[i]


def run(tmp_path=None, train=None, epochs=4, lr=0.1, **kw):
    # device="cpu": on a GPU machine fit would pick CUDA and the CPU-side comparisons below would mix devices
    config = TrainConfig(epochs=epochs, lr=lr, batch_size=16, progress=False, device=kw.pop("device", "cpu"),
                         checkpoint=None if tmp_path is None else tmp_path / "ck.pt", **kw)
    return fit(tiny_net(), train if train is not None else blobs(), blobs(48, seed=1), config)


def numbers(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds")


def test_learns_and_reports_history():
    result = run(epochs=4)
    h = result.history
    assert list(h.index) == [1, 2, 3, 4]
    assert {"lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(h.columns)
    assert h["val_accuracy"].max() >= 0.9
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert result.best_epoch == int(h["val_accuracy"].idxmax())
    assert result.best_value == h["val_accuracy"].max()
    # restore_best: the returned model carries the best epoch's weights
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, result.best_state[k])


def test_same_seed_same_numbers_other_seed_other_numbers():
    a, b, c = run(epochs=2, seed=3), run(epochs=2, seed=3), run(epochs=2, seed=4)
    pd.testing.assert_frame_equal(numbers(a.history), numbers(b.history), check_exact=True)
    assert not numbers(a.history).equals(numbers(c.history))


def test_interrupted_run_resumes_bitwise(tmp_path):
    full = run(tmp_path / "full", epochs=4)
    with pytest.raises(KeyboardInterrupt):  # dies in epoch 3, after 2.5 epochs of reads
        run(tmp_path / "cut", train=Interrupting(blobs(), limit=96 * 2 + 40), epochs=4)
    saved = load_checkpoint(tmp_path / "cut" / "ck.pt")
    assert saved["epoch"] == 2 and len(saved["history"]) == 2
    resumed = run(tmp_path / "cut", epochs=4)
    pd.testing.assert_frame_equal(numbers(full.history), numbers(resumed.history), check_exact=True)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    final = load_checkpoint(tmp_path / "cut" / "ck.pt")
    assert final["epoch"] == 4
    # a finished run resumed again trains nothing and returns the same history
    again = run(tmp_path / "cut", epochs=4)
    pd.testing.assert_frame_equal(numbers(again.history), numbers(full.history), check_exact=True)


def test_max_steps_takes_exactly_the_full_runs_first_steps(tmp_path):
    """96 samples in batches of 16: 6 steps per epoch. Stopping after 9 steps (in epoch 2) takes the
    full run's first 9 steps bitwise (the schedule still spans 4 epochs); the cut epoch gets its
    history row but no checkpoint, so a full run resumes from epoch 1 and ends as if never cut."""
    full = run(epochs=4)
    assert len(full.step_losses) == 24
    # step_losses are the training losses: equal batches, so an epoch's mean is its history row
    assert sum(full.step_losses[:6]) / 6 == pytest.approx(full.history["train_loss"].iloc[0], rel=1e-12)
    cut = run(tmp_path, epochs=4, max_steps=9)
    assert cut.step_losses == full.step_losses[:9]
    assert list(cut.history.index) == [1, 2]
    pd.testing.assert_series_equal(cut.history["lr"], full.history["lr"].iloc[:2])
    pd.testing.assert_frame_equal(numbers(cut.history).iloc[:1], numbers(full.history).iloc[:1], check_exact=True)
    assert not numbers(cut.history).iloc[1].equals(numbers(full.history).iloc[1])  # half an epoch's means
    assert load_checkpoint(tmp_path / "ck.pt")["epoch"] == 1
    resumed = run(tmp_path, epochs=4)
    pd.testing.assert_frame_equal(numbers(resumed.history), numbers(full.history), check_exact=True)
    assert resumed.step_losses == full.step_losses[6:]  # the steps this call took
    assert run(epochs=2, max_steps=100).step_losses == run(epochs=2).step_losses


def test_resume_refuses_other_settings(tmp_path):
    run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="other settings"):
        run(tmp_path, epochs=1, lr=0.5)


def test_checkpoint_is_atomic_and_safe(tmp_path):
    path = tmp_path / "a" / "c.pt"
    save_checkpoint({"epoch": 1, "history": [{"x": 1.0}], "w": torch.ones(2)}, path)
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary file left behind
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(2))
    torch.save({"not": "ours"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a rnnpool_lite checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format_version": 1, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_multilabel_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = torch.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], dim=1).float()
    torch.manual_seed(0)
    result = fit(nn.Linear(6, 2), TensorDataset(x, y), TensorDataset(x, y),
                 TrainConfig(epochs=6, batch_size=16, lr=0.5, task=MultiLabelTask(), progress=False))
    assert result.history["val_label_accuracy"].iloc[-1] >= 0.9
    assert (result.history["val_accuracy"] <= result.history["val_label_accuracy"] + 1e-12).all()


def test_cosine_schedule_values():
    assert cosine_lr(0, 10, 0.1) == pytest.approx(0.1)
    assert cosine_lr(5, 10, 0.1) == pytest.approx(0.05)
    assert cosine_lr(9, 10, 0.1) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.9)))
    warm = [cosine_lr(s, 20, 0.01, warmup_steps=5) for s in range(20)]
    assert warm[:5] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.01])
    assert warm[5] == pytest.approx(0.01) and all(a >= b for a, b in zip(warm[5:], warm[6:]))
    with pytest.raises(ValueError, match="step"):
        cosine_lr(10, 10, 0.1)
    with pytest.raises(ValueError, match="warmup"):
        cosine_lr(0, 10, 0.1, warmup_steps=10)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(epochs=0), ParameterError, "^parameter epochs=0: expected an integer >= 1"),
    (dict(epochs=2.0), ParameterTypeError, "^parameter epochs=2.0"),
    (dict(batch_size=0), ParameterError, "^parameter batch_size=0"),
    (dict(warmup_epochs=3, epochs=3), ParameterError, "^parameter warmup_epochs=3: expected fewer than epochs=3"),
    (dict(lr=-1.0), ParameterError, "^parameter lr=-1.0"),
    (dict(lr=float("nan")), ParameterError, "^parameter lr=nan"),
    (dict(momentum=1.0), ParameterError, "^parameter momentum=1.0"),
    (dict(weight_decay=-1e-5), ParameterError, "^parameter weight_decay="),
    (dict(seed=-1), ParameterError, "^parameter seed=-1"),
    (dict(num_workers=-1), ParameterError, "^parameter num_workers=-1"),
    (dict(device="tpu"), ParameterError, "^parameter device='tpu'"),
    (dict(grad_clip=0.0), ParameterError, "^parameter grad_clip=0.0"),
    (dict(progress="yes"), ParameterError, "^parameter progress='yes'"),
    (dict(keep_freed_memory=None), ParameterError, "^parameter keep_freed_memory=None"),
    (dict(checkpoint=3), ParameterTypeError, "^parameter checkpoint=3"),
    (dict(task=object()), ParameterTypeError, "^parameter task="),
    (dict(max_steps=0), ParameterError, "^parameter max_steps=0: expected an integer >= 1"),
    (dict(max_steps=2.0), ParameterTypeError, "^parameter max_steps=2.0"),
])
def test_bad_config_fails_at_construction_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_config_is_frozen_and_normalised(tmp_path):
    config = TrainConfig(epochs=3, lr=1, checkpoint=str(tmp_path / "ck.pt"))
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.checkpoint == tmp_path / "ck.pt"
    assert config.resume_settings() == dict(epochs=3, lr=1.0, momentum=0.9, weight_decay=4e-5, warmup_epochs=0,
                                            batch_size=64, seed=0)
    with pytest.raises(AttributeError):
        config.lr = 0.1  # type: ignore[misc]


def test_rejects_non_module_and_non_config():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fit(lambda x: x, blobs(), None, TrainConfig(epochs=1))
    with pytest.raises(TypeError, match="TrainConfig"):
        fit(tiny_net(), blobs(), None, {"epochs": 1})


class Jittered(Dataset):
    """Random augmentation in ``__getitem__`` (torch and NumPy RNGs), as transforms do."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        import numpy as np
        x, y = self.base[i]
        return x + 0.1 * torch.randn_like(x) + float(np.random.uniform(-0.1, 0.1)), y


def test_augmenting_workers_are_seeded(tmp_path):
    def go(path, **kw):
        return run(path, train=Jittered(blobs()), epochs=2, num_workers=2, **kw)

    a, b = go(tmp_path / "a"), go(tmp_path / "b")
    pd.testing.assert_frame_equal(numbers(a.history), numbers(b.history), check_exact=True)
    c = go(tmp_path / "c", seed=1)
    assert not numbers(a.history).equals(numbers(c.history))


@pytest.mark.parametrize("with_conv, channels", [(False, 2 * 4), (True, 4 * 3)])
def test_probe_shapes(with_conv, channels):
    from rnnpool_lite.train import RNNPoolProbe
    probe = RNNPoolProbe(image_size=9, num_classes=5, hidden_size=3, hidden_size2=channels // 4, with_conv=with_conv)
    x = torch.randn(4, 1, 9, 9)
    assert probe.features(x).shape == (4, channels)
    assert probe(x).shape == (4, 5)
    with pytest.raises(ValueError, match="image_size"):
        RNNPoolProbe(1, 5, 2, 2)


@pytest.mark.parametrize("patch, stride, pools, pooled", [(6, 4, 1, 4), (8, 4, 1, 4), (4, None, 1, 4),
                                                          (12, 8, 1, 2), (6, 4, 2, 2)])
def test_probe_as_a_downsampler(patch, stride, pools, pooled):
    """Table 16's rows on the probe: RNNPool slides over the conv's 16x16 map with the row's patch
    and stride (one or two RNNPools), so the map shrinks by the total stride, then is averaged."""
    from rnnpool_lite.op.layer import RNNPool2d
    from rnnpool_lite.train import RNNPoolProbe
    probe = RNNPoolProbe(32, 9, 5, 3, with_conv=True, patch_size=patch, stride=stride, pools=pools)
    rnnpools = [m for m in probe.pool if isinstance(m, RNNPool2d)]
    assert len(rnnpools) == pools and rnnpools[0].kernel_size == (patch, patch)
    x = torch.rand(2, 1, 32, 32)
    assert probe.pool[:-1](probe.conv(x)).shape == (2, 12, pooled, pooled)
    assert probe.features(x).shape == (2, 12) and probe(x).shape == (2, 9)


def test_probe_downsampler_refuses_what_it_cannot_build():
    from rnnpool_lite.train import RNNPoolProbe
    with pytest.raises(ValueError, match="pools"):
        RNNPoolProbe(32, 9, 4, 4, pools=2)  # a second pool needs the first to slide
    with pytest.raises(ValueError, match="stride"):
        RNNPoolProbe(32, 9, 4, 4, stride=2)
    with pytest.raises(ValueError, match="patch_size"):
        RNNPoolProbe(32, 9, 4, 4, with_conv=True, patch_size=17)


@pytest.mark.parametrize("cell, gates", [("fastgrnn", 1), ("gru", 3), ("lstm", 4)])
def test_probe_cell_choice(cell, gates):
    """The ablation chapter's probe: the cell reaches the RNNPool layer, and its parameter count
    grows with the cell's gate count (W and U matrices per gate, Table 18's cost ordering)."""
    from rnnpool_lite.train import RNNPoolProbe
    probe = RNNPoolProbe(image_size=8, num_classes=3, hidden_size=4, hidden_size2=4, cell=cell)
    assert probe.pool.cell == cell
    assert probe(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    weights = sum(p.numel() for n, p in probe.pool.named_parameters() if p.dim() == 2)
    assert weights == gates * (4 * (1 + 4) + 4 * (4 + 4))  # RNN1: 4 x (1 + 4), RNN2: 4 x (4 + 4) per gate
    with pytest.raises(ValueError, match="cell"):
        RNNPoolProbe(8, 3, 4, 4, cell="rnn")


def test_zero_lr_is_a_control_run_that_updates_no_weight():
    """lr=0 (chapter 5's crippled RNNPool model) trains nothing; BatchNorm statistics still follow the data."""
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit(net, blobs(), blobs(seed=1), TrainConfig(epochs=2, batch_size=16, lr=0.0, progress=False, device="cpu"))
    after = net.state_dict()
    for name, param in net.named_parameters():
        assert torch.equal(param.detach(), before[name]), name
    assert not torch.equal(after["1.running_mean"], before["1.running_mean"])
    assert cosine_lr(3, 10, 0.0) == 0.0


class Plain(Dataset):
    """The same items as a TensorDataset, but not one: fit reads it item by item through a DataLoader."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]


def test_tensor_datasets_are_batched_by_indexing_with_the_dataloaders_numbers():
    by_indexing = run(epochs=2, train=blobs())
    per_item = run(epochs=2, train=Plain(blobs()))
    pd.testing.assert_frame_equal(numbers(by_indexing.history), numbers(per_item.history), check_exact=True)


def test_fit_picks_channels_last_for_models_with_2d_convolutions():
    cpu = torch.device("cpu")
    assert choose_execution(tiny_net(), cpu).channels_last
    assert not choose_execution(nn.Linear(6, 2), cpu).channels_last
    assert not choose_execution(tiny_net(), cpu, layout="nchw").channels_last
    assert choose_execution(tiny_net(), cpu).autocast_dtype is None  # bf16 only when asked
    assert choose_execution(tiny_net(), cpu, precision="bf16").autocast_dtype == torch.bfloat16
    # the model comes back in the default layout, whatever layout it trained in
    result = run(epochs=1)
    assert all(p.is_contiguous() for p in result.model.parameters())


def test_fast_path_on_and_off_agree():
    """channels_last changes only the float rounding: the same run in NCHW ends with the same numbers."""
    fast, eager = run(epochs=3), run(epochs=3, layout="nchw", precision="fp32")
    pd.testing.assert_frame_equal(numbers(fast.history), numbers(eager.history), rtol=1e-4)
    bf16 = run(epochs=3, precision="bf16")  # opt-in autocast: close, not equal
    assert bf16.history["train_loss"].to_numpy() == pytest.approx(eager.history["train_loss"].to_numpy(), rel=0.05)


class _PoolNet(nn.Module):
    """A conv and an RNNPool layer, sized for the C++ kernel (C = 4, h = 8)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(2, 4, 1), RNNPool2d(4, 8, 2, 2), nn.Flatten(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.skipif(unavailable_reason() is not None, reason="the C++ kernel does not build here")
def test_fit_runs_rnnpool_on_the_kernel_by_default_and_a_flag_turns_it_off(monkeypatch):
    calls = {"kernel": 0}

    class Counting(KernelPool):
        @staticmethod
        def forward(*args):  # type: ignore[override]
            calls["kernel"] += 1
            return KernelPool.forward(*args)

    monkeypatch.setattr(fused, "KernelPool", Counting)
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert choose_execution(_PoolNet(), torch.device("cpu")).rnnpool_kernel == "compiled"
    config = dict(epochs=2, lr=0.1, batch_size=16, progress=False, device="cpu")
    on = fit(_PoolNet(), blobs(), blobs(48, seed=1), TrainConfig(**config))
    assert calls["kernel"] == 2 * (6 + 3)  # 6 training and 3 validation batches per epoch
    off = fit(_PoolNet(), blobs(), blobs(48, seed=1), TrainConfig(**config, rnnpool_kernel="torch"))
    assert calls["kernel"] == 18
    # the two paths round differently, nothing more
    pd.testing.assert_frame_equal(numbers(on.history), numbers(off.history), rtol=1e-3)


def test_resume_refuses_another_layout(tmp_path):
    run(tmp_path, epochs=1)
    with pytest.raises(ValueError, match="layout"):
        run(tmp_path, epochs=1, layout="nchw")


@pytest.mark.parametrize("kwargs, match", [(dict(layout="nhwc"), "^parameter layout='nhwc'"),
                                           (dict(precision="fp16"), "^parameter precision='fp16'"),
                                           (dict(rnnpool_kernel="cuda"), "^parameter rnnpool_kernel='cuda'")])
def test_bad_execution_settings(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        TrainConfig(**kwargs)
