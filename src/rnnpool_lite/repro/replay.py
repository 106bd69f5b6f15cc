"""Replay the first training steps of one committed evidence run: does the code still make it?

    python -m rnnpool_lite.repro.replay results/evidence/<chapter> [--steps N]

An evidence folder (:mod:`rnnpool_lite.repro.evidence`) was made by the code of one commit; the code
moves on. Rerunning the whole grid to check it takes hours, but its first optimizer steps take
seconds and already depend on everything before them: the data, the model and its
initialisation, the loss, the optimizer and the schedule. Each run notebook records
``first_losses``, the training losses of the first steps of its first seed
(``record("first_losses", result.step_losses[:20])``), and takes a ``max_steps`` parameter
(:class:`rnnpool_lite.train.TrainConfig`'s). :func:`replay` picks the finished run with the smallest
first seed, executes the same run notebook again (the one ``provenance.json`` names, relative to
the repository root above the folder) with the run's parameters, that seed alone and
``max_steps=steps``, and compares the replayed losses with the recorded ones.

Tolerance (:data:`RTOL` = 1e-4), measured with torch 2.13 on an AVX512 CPU, one thread:

* ``tests/data/tiny_run.ipynb`` (a conv + RNNPool2d classifier), first 5 steps: under
  ``ATEN_CPU_CAPABILITY=default`` (the scalar kernels: another machine's rounding) the losses
  differ by at most 8.0e-8 (relative); a code change moves them by 3e-2 or more from the first
  step on (another initialisation seed: 8.2e-2 at step 1, 0.29 at most; one more conv channel:
  3.2e-2 at step 1, 0.12 at most). ``max_steps=5`` gives the full run's first 5 losses bitwise.
* chapter 5's MobileNetV2-RNNPool (``notebooks/runs/vww_model.ipynb``'s model and augmented data,
  48 px, batch 32, lr 0.05): the first step agrees across CPU paths (5.2e-7 under
  ``ATEN_CPU_CAPABILITY=default``, 0 with ATen and oneDNN held to AVX2 by
  ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``), another seed moves it by 7.4e-2. But
  training amplifies the rounding difference by three to four orders of magnitude per step: at step 2 it is
  2.9e-3 (default) and 2.4e-6 (AVX2), at step 3 6.2e-2 and 1.2e-2, as large as a seed change. The
  same holds for the MobileNetV2 baseline (1.2e-6, 5.7e-3, 0.13). The sensitivity is the
  training's, not a CPU path's: on one machine, scaling every initial weight by ``1 + 1e-7 * noise``
  moves step 2 by 5.4e-3 and step 3 by 3.8e-2. ATen alone at AVX2 (oneDNN still AVX512) gives the
  AVX512 losses bitwise.

So a 5-step replay checks a model like chapter 5's only on a machine that rounds as the one that
made the evidence (same torch build, CPU capability and oneDNN / MKL code paths); elsewhere the
report names the environment entries that differ and ``--steps 1`` still checks the data, the
model, its initialisation and the loss (not the optimizer or the schedule) well within 1e-4.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnpool_lite.op.compiled import KERNEL_ENV, KERNELS
from rnnpool_lite.repro.results import git_commit, repository_root
from rnnpool_lite.repro.sweep import combinations, run_key, run_one

FIRST_LOSSES = "first_losses"
RTOL = 1e-4
DEFAULT_STEPS = 5


ROUNDING = ("torch", "cpu_capability", "rnnpool_kernel")  # the environment entries a replay names when they differ
#: entries added to the environment after some evidence was recorded, and the value they had then
#: (before ``rnnpool_kernel`` was recorded, every run used the torch path)
UNRECORDED = {"rnnpool_kernel": "torch"}


@dataclass(frozen=True)
class ReplayReport:
    """A recorded run's first step losses beside the ones the code gives now."""

    folder: Path
    run: str                      # the run's key in ``folder/runs``
    parameters: dict[str, Any]    # what the replay passed to the notebook
    recorded: list[float]
    replayed: list[float]
    rtol: float
    evidence_commit: str | None   # the commit the recorded run was made at
    commit_now: str | None
    evidence_environment: dict[str, Any]  # torch, CPU capability, ... of the recorded run
    environment_now: dict[str, Any]

    @property
    def relative_differences(self) -> list[float]:
        """Per step, ``|replayed - recorded| / |recorded|`` (all infinite when the lengths differ)."""
        if len(self.recorded) != len(self.replayed):
            return [math.inf] * len(self.recorded)
        return [abs(a - b) / abs(a) if a else abs(b) for a, b in zip(self.recorded, self.replayed)]

    @property
    def max_relative_difference(self) -> float:
        return max(self.relative_differences, default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_relative_difference <= self.rtol

    @property
    def first_mismatch(self) -> int | None:
        """The first step (1-based) outside the tolerance, or ``None``."""
        return next((i + 1 for i, d in enumerate(self.relative_differences) if d > self.rtol), None)

    @property
    def environment_differences(self) -> dict[str, tuple[Any, Any]]:
        """The rounding-relevant entries (:data:`ROUNDING`) that differ: ``{name: (then, now)}``."""
        then, now = self.evidence_environment, self.environment_now
        was = {k: then.get(k, UNRECORDED.get(k)) for k in ROUNDING}
        return {k: (was[k], now.get(k)) for k in ROUNDING if was[k] != now.get(k)}

    def describe(self) -> str:
        """What was compared and the outcome, in a few lines."""
        at, now = (self.evidence_commit or "unknown")[:10], (self.commit_now or "unknown")[:10]
        verdict = "matches" if self.ok else f"DOES NOT MATCH from step {self.first_mismatch}"
        lines = [f"replay of {self.folder / 'runs' / self.run} with {self.parameters}",
                 f"  recorded (commit {at}): {self.recorded}",
                 f"  replayed (commit {now}): {self.replayed}",
                 f"  relative differences {[float(f'{d:.2g}') for d in self.relative_differences]}, "
                 f"tolerance {self.rtol:g}: {verdict}"]
        for name, (then, current) in self.environment_differences.items():
            lines.append(f"  {name}: {then} when recorded, {current} now")
        return "\n".join(lines)


def _notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The notebook's papermill parameters and their default values (as text where not a literal)."""
    import papermill as pm

    defaults: dict[str, Any] = {}
    for name, spec in pm.inspect_notebook(str(notebook)).items():
        try:
            defaults[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            defaults[name] = spec["default"]
    return defaults


def _first_seed(params: dict[str, Any], defaults: dict[str, Any]) -> int:
    """The run's first seed: ``seeds[0]`` or ``seed``, from its parameters or the notebook's default."""
    name = "seeds" if "seeds" in defaults else "seed"
    value = params.get(name, defaults[name])
    seed = value[0] if name == "seeds" and isinstance(value, list) and value else value
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"cannot tell the first seed of a run with {name}={value!r} (a grid value or a literal "
                         f"default is needed)")
    return seed


def _finished_runs(folder: Path, grid: Any) -> list[dict[str, Any]]:
    """The grid's finished runs that recorded ``first_losses``, in grid order."""
    runs = []
    for params in combinations(grid):
        path = folder / "runs" / f"{run_key(params)}.json"
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved is not None and saved["status"] == "ok" and FIRST_LOSSES in saved["records"]:
            runs.append(saved)
    return runs


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block (the run notebook's kernel process inherits it)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def replay(folder: str | Path, steps: int = DEFAULT_STEPS, rtol: float = RTOL, kernel: str | None = None,
           timeout: float | None = None, rnnpool_kernel: str | None = None) -> ReplayReport:
    """Replay the first ``steps`` optimizer steps of the evidence run in ``folder`` with the smallest
    first seed and compare their losses with the recorded ones (relative tolerance ``rtol``).

    ``kernel`` is the Jupyter kernel (default: the notebook's). RNNPool layers run on
    ``rnnpool_kernel`` (:mod:`rnnpool_lite.op.compiled`); by default on the one the run recorded
    (``"torch"`` for runs from before it was recorded), so that the check stays exact after the
    default changes. Name another to see what it changes.

    Raises ``FileNotFoundError`` without ``provenance.json`` or the notebook it names,
    ``ValueError`` where no finished run recorded ``first_losses`` (or fewer than ``steps``), or
    the notebook has no ``max_steps`` / ``seed(s)`` parameter, and ``RuntimeError`` when the
    replayed notebook fails.
    """
    folder = Path(folder).resolve()
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    provenance_path = folder / "provenance.json"
    if not provenance_path.is_file():
        raise FileNotFoundError(f"{provenance_path} does not exist: {folder} is not a sweep's folder")
    last = json.loads(provenance_path.read_text())["invocations"][-1]
    root = repository_root(folder)
    notebook = (root or Path.cwd()) / last["notebook"]
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook} (the notebook {provenance_path} names) does not exist")
    defaults = _notebook_defaults(notebook)
    missing = [name for name in ("max_steps",) if name not in defaults]
    if "seeds" not in defaults and "seed" not in defaults:
        missing.append("seeds (or seed)")
    if missing:
        raise ValueError(f"{notebook} has no papermill parameter {' or '.join(missing)}: a replay needs both")
    runs = _finished_runs(folder, last["grid"])
    if not runs:
        raise ValueError(f"no finished run in {folder} recorded {FIRST_LOSSES!r}: the run notebook must "
                         f"record('{FIRST_LOSSES}', result.step_losses[:20]) for its first seed, and the "
                         f"evidence be swept again")
    chosen = min(runs, key=lambda r: _first_seed(r["params"], defaults))
    recorded = [float(v) for v in chosen["records"][FIRST_LOSSES][:steps]]
    if len(recorded) < steps:
        raise ValueError(f"run {chosen['key']} recorded {len(recorded)} step losses, fewer than steps={steps}")
    seed = _first_seed(chosen["params"], defaults)
    parameters = {**chosen["params"], **({"seeds": [seed]} if "seeds" in defaults else {"seed": seed}),
                  "max_steps": steps}
    then = chosen.get("environment", {})
    layer_kernel = rnnpool_kernel or then.get("rnnpool_kernel", UNRECORDED["rnnpool_kernel"])
    with _environ(KERNEL_ENV, layer_kernel):
        result = run_one(str(notebook), parameters, kernel, timeout)
    if result["status"] != "ok" or FIRST_LOSSES not in result["records"]:
        log = result["log"].strip().splitlines()[-20:]
        raise RuntimeError(f"the replay of run {chosen['key']} failed: {result['error'] or 'no first_losses record'}"
                           + ("\n" + "\n".join(log) if log else ""))
    replayed = [float(v) for v in result["records"][FIRST_LOSSES]]
    return ReplayReport(folder, chosen["key"], parameters, recorded, replayed, rtol, chosen.get("commit"),
                        git_commit(root or folder), then, result["environment"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnpool_lite.repro.replay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an evidence sweep's folder (results/evidence/<chapter>)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"optimizer steps to replay (default {DEFAULT_STEPS})")
    parser.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance (default {RTOL:g})")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    parser.add_argument("--rnnpool-kernel", choices=KERNELS, default=None,
                        help="what RNNPool layers run on (default: what the recorded run used)")
    args = parser.parse_args(argv)
    try:
        report = replay(args.folder, args.steps, args.rtol, args.kernel, rnnpool_kernel=args.rnnpool_kernel)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.describe())
    if not report.ok:
        print(f"the committed evidence in {args.folder} no longer matches the code: step {report.first_mismatch}'s "
              f"training loss differs by {report.max_relative_difference:.3g} (relative) > {report.rtol:g}; rerun "
              f"the evidence sweep at this commit, or find the change that moved it", file=sys.stderr)
        if report.environment_differences and report.first_mismatch != 1:
            print("this machine rounds differently from the one that made the evidence (above), and training "
                  "amplifies rounding differences step by step: --steps 1 compares the first step alone "
                  "(see the module's docstring)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
