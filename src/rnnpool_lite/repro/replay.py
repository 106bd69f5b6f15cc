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

Tolerance (:data:`RTOL`), measured on ``tests/data/tiny_run.ipynb`` (a conv + RNNPool2d classifier)
and on chapter 5's MobileNetV2-RNNPool (``notebooks/runs/vww_model.ipynb``'s model and data, 5
steps) with torch 2.13 on an AVX512 CPU: the same run under ``ATEN_CPU_CAPABILITY=default`` (the
scalar kernels, another machine's rounding) gives first-5-step losses that differ by at most
{capability} (relative); a changed run differs by {change} at least (another initialisation seed,
one more conv channel). ``RTOL = 1e-4`` sits orders of magnitude from both.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnpool_lite.repro.results import git_commit, repository_root
from rnnpool_lite.repro.sweep import combinations, run_key, run_one

FIRST_LOSSES = "first_losses"
RTOL = 1e-4
DEFAULT_STEPS = 5


@dataclass(frozen=True)
class ReplayReport:
    """A recorded run's first step losses beside the ones the code gives now."""

    folder: Path
    run: str                      # the run's key in ``folder/runs``
    parameters: dict[str, Any]    # what the replay passed to the notebook
    recorded: list[float]
    replayed: list[float]
    max_relative_difference: float
    rtol: float
    evidence_commit: str | None   # the commit the recorded run was made at
    commit_now: str | None

    @property
    def ok(self) -> bool:
        return self.max_relative_difference <= self.rtol

    def describe(self) -> str:
        """What was compared and the outcome, in a few lines."""
        at, now = (self.evidence_commit or "unknown")[:10], (self.commit_now or "unknown")[:10]
        verdict = "matches" if self.ok else "DOES NOT MATCH"
        return (f"replay of {self.folder / 'runs' / self.run} with {self.parameters}\n"
                f"  recorded (commit {at}): {self.recorded}\n"
                f"  replayed (commit {now}): {self.replayed}\n"
                f"  largest relative difference {self.max_relative_difference:.3g}, tolerance {self.rtol:g}: "
                f"{verdict}")


def _relative_difference(recorded: list[float], replayed: list[float]) -> float:
    if len(recorded) != len(replayed):
        return float("inf")
    return max((abs(a - b) / abs(a) if a else abs(b) for a, b in zip(recorded, replayed)), default=0.0)


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
    if "seeds" in defaults:
        return int(params.get("seeds", defaults["seeds"])[0])
    return int(params.get("seed", defaults["seed"]))


def _finished_runs(folder: Path, grid: Any) -> list[dict[str, Any]]:
    """The grid's finished runs that recorded ``first_losses``, in grid order."""
    runs = []
    for params in combinations(grid):
        path = folder / "runs" / f"{run_key(params)}.json"
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved is not None and saved["status"] == "ok" and FIRST_LOSSES in saved["records"]:
            runs.append(saved)
    return runs


def replay(folder: str | Path, steps: int = DEFAULT_STEPS, rtol: float = RTOL, kernel: str | None = None,
           timeout: float | None = None) -> ReplayReport:
    """Replay the first ``steps`` optimizer steps of the evidence run in ``folder`` with the smallest
    first seed and compare their losses with the recorded ones (relative tolerance ``rtol``).

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
    result = run_one(str(notebook), parameters, kernel, timeout)
    if result["status"] != "ok" or FIRST_LOSSES not in result["records"]:
        log = result["log"].strip().splitlines()[-20:]
        raise RuntimeError(f"the replay of run {chosen['key']} failed: {result['error'] or 'no first_losses record'}"
                           + ("\n" + "\n".join(log) if log else ""))
    replayed = [float(v) for v in result["records"][FIRST_LOSSES]]
    return ReplayReport(folder, chosen["key"], parameters, recorded, replayed,
                        _relative_difference(recorded, replayed), rtol, chosen.get("commit"),
                        git_commit(root or folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnpool_lite.repro.replay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an evidence sweep's folder (results/evidence/<chapter>)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"optimizer steps to replay (default {DEFAULT_STEPS})")
    parser.add_argument("--rtol", type=float, default=RTOL, help=f"relative tolerance (default {RTOL:g})")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    args = parser.parse_args(argv)
    try:
        report = replay(args.folder, args.steps, args.rtol, args.kernel)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.describe())
    if not report.ok:
        print(f"the committed evidence in {args.folder} no longer matches the code: its first {args.steps} step "
              f"losses differ by {report.max_relative_difference:.3g} (relative) > {report.rtol:g}; rerun the "
              f"evidence sweep at this commit, or find the change that moved them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
