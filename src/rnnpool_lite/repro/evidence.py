"""A chapter's committed evidence run: the sweep folder under ``results/evidence/<chapter>/``.

The quick tier of a chapter is what the book command executes; the evidence tier is a larger,
resumable sweep (``python -m rnnpool_lite.repro.sweep``) over the chapter's run notebook, with its
hyper-parameters fixed in a committed ``grid.yaml`` before the run. Its folder holds every run's
executed notebook and records, ``results.csv`` and ``provenance.json`` (command, grid, commit,
environment, device, wall and CPU time of each invocation). A chapter shows the evidence beside
its own quick run with :func:`load_evidence`; where the folder has no finished run (a fresh
evidence grid, a reader's own data) it gets ``None`` and says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rnnpool_lite.repro.results import repo_relative
from rnnpool_lite.repro.sweep import combinations, load_grid

GRID_FILE = "grid.yaml"


@dataclass(frozen=True)
class Evidence:
    """The finished runs of one evidence sweep and where they came from."""

    folder: Path
    grid: Any                 # the committed grid (what the runs were asked to cover)
    runs: pd.DataFrame        # results.csv, the runs whose status is "ok"
    errors: tuple[str, ...]   # one per failed run, in grid order ("" where none was recorded); failed
                              # runs are retried when the sweep resumes, "pending" ones have not run yet
    planned: int              # combinations in the grid
    provenance: dict[str, Any]

    @property
    def failed(self) -> int:
        """Runs that failed."""
        return len(self.errors)

    @property
    def invocations(self) -> list[dict[str, Any]]:
        return list(self.provenance.get("invocations", []))

    @property
    def complete(self) -> bool:
        """Every combination of the grid has finished."""
        return len(self.runs) == self.planned

    @property
    def commits(self) -> list[str]:
        """The commits the runs were made at (first seen first)."""
        found = [str(inv.get("commit")) for inv in self.invocations if inv.get("runs_executed")]
        return list(dict.fromkeys(found))

    @property
    def wall_hours(self) -> float:
        return sum(float(inv.get("wall_s") or 0.0) for inv in self.invocations) / 3600

    @property
    def cpu_hours(self) -> float:
        return float(self.runs["cpu_s"].fillna(0.0).sum()) / 3600 if "cpu_s" in self.runs else 0.0

    def describe(self) -> str:
        """One paragraph of Markdown: what ran, where, at which commit, and what it cost (command,
        environment and device of the last invocation that ran anything, not of a later one that
        only found every run done)."""
        ran = [inv for inv in self.invocations if inv.get("runs_executed")] or self.invocations
        last = ran[-1] if ran else {}
        env = last.get("environment", {})
        commits = ", ".join(c[:10] for c in self.commits) or "unknown"
        state = "complete" if self.complete else f"{len(self.runs)} of {self.planned} runs finished"
        if self.failed:  # a run that fails again on resuming is a finding, not a hiccup: name it
            first = self.errors[0] or "no error recorded"
            state += (f"; {self.failed} failed, which a resumed sweep retries (the first: {first}; "
                      "each run's log is in the folder's runs/)")
        return (f"Evidence run ({state}): `{last.get('command', '?')}` at commit {commits}, "
                f"torch {env.get('torch', '?')}, CPU capability {env.get('cpu_capability', '?')}, "
                f"on {last.get('device', '?')}; "
                f"{self.wall_hours:.2f} h wall, {self.cpu_hours:.2f} h CPU over "
                f"{len(self.invocations)} invocation(s).")


def evidence_folder(chapter: str, root: str | Path = "../results/evidence") -> Path:
    """Where chapter ``chapter``'s evidence lives (``root`` is relative to the notebooks)."""
    return Path(root) / chapter


def load_evidence(folder: str | Path) -> Evidence | None:
    """The evidence in ``folder``, or ``None`` when no run there has finished yet.

    Raises ``FileNotFoundError`` when ``folder`` has no ``grid.yaml``: evidence starts from a
    committed grid.
    """
    folder = Path(folder)
    grid_path = folder / GRID_FILE
    if not grid_path.is_file():
        raise FileNotFoundError(f"{grid_path} does not exist: an evidence run starts from a committed grid")
    grid = load_grid(grid_path)
    table_path = folder / "results.csv"
    if not table_path.is_file():
        return None
    table = pd.read_csv(table_path)
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    if ok.empty:
        return None
    provenance_path = folder / "provenance.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    failed = table[table["status"] == "failed"]
    errors = tuple(str(e) for e in failed["error"].fillna("")) if "error" in failed else ("",) * len(failed)
    return Evidence(folder, grid, ok, errors, len(combinations(grid)), provenance)


def sweep_command(run_notebook: str | Path, folder: str | Path, jobs: int = 2) -> str:
    """The command that runs (or resumes) the evidence sweep of ``run_notebook`` into ``folder``,
    from the repository root (paths relative to it; absolute for a folder outside the checkout)."""
    folder = Path(folder)
    return (f"python -m rnnpool_lite.repro.sweep {repo_relative(run_notebook)} "
            f"--grid {repo_relative(folder / GRID_FILE)} --out {repo_relative(folder)} --jobs {jobs}")


def chapter_evidence(folder: str | Path | None, run_notebook: str | Path,
                     jobs: int = 2) -> tuple[Evidence | None, str]:
    """What a chapter's verdicts rest on: the evidence in ``folder`` when every run of its grid has
    finished (else ``None``: the chapter falls back on its quick run), and one Markdown paragraph that
    says so, with the command that runs or resumes the sweep. Partial evidence decides nothing: a
    verdict over the seeds that happened to finish first would depend on when a session ended.

    ``folder`` None means the reader turned the evidence off (``evidence_dir=None``); a folder that
    does not exist (the chapter run outside the book's checkout) is no evidence either, while an
    existing one without ``grid.yaml`` raises ``FileNotFoundError``, as in :func:`load_evidence`.
    """
    if folder is None:
        return None, ("The evidence run is not used by this run (`evidence_dir=None`); the verdicts below "
                      "are the quick run's.")
    command = f"`{sweep_command(run_notebook, folder, jobs)}`"
    if not Path(folder).exists():  # a chapter copied out of the book's checkout (a Colab launch)
        return None, (f"This copy of the chapter has no evidence folder ({folder}: the evidence lives in the "
                      "book's repository), so the verdicts below are the quick run's.")
    evidence = load_evidence(folder)
    if evidence is None:
        return None, ("The evidence run has not been run in this checkout; the verdicts below are the "
                      f"quick run's. Run it from the repository root with {command}.")
    if not evidence.complete:
        return None, (f"The evidence run is not complete, so the verdicts below are the quick run's. "
                      f"{evidence.describe()} Resume it from the repository root with {command}.")
    return evidence, evidence.describe()
