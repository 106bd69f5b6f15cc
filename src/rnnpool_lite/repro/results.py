"""What a chapter measured, the claims it checks, and how two machines' runs compare.

Trained numbers differ between CPUs (PyTorch's kernels round differently per SIMD path), so the
book never compares them as saved text. Instead a chapter

* states each claim about a run-dependent number with :func:`claim` (an ``AssertionError`` that
  names the claim and the measured values, so a machine where it fails says which one);
* summarizes seeds with :func:`seed_summary` and decides an ordering with :func:`ordering`, which
  calls it only where the means are separated by more than their spreads;
* writes its "paper vs this book" numbers with :class:`ChapterResults` to
  ``results/<chapter>.json``, together with its parameters, seeds, the torch version and the CPU
  capability, so ``python -m rnnpool_lite.repro.results compare A B`` can show what moved between two
  machines; the same command compares two sweep folders (an evidence run and a reader's rerun of its
  grid) run by run.
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from rnnpool_lite.stats import PairedComparison

RESULTS_DIR_ENV = "RNNPOOL_LITE_RESULTS"


class ClaimFailed(AssertionError):
    """A chapter's claim about a measured number did not hold on this machine."""


def claim(holds: bool, statement: str, **measured: Any) -> None:
    """Check one claim of a chapter; raise :class:`ClaimFailed` naming it when it does not hold.

    ``statement`` is the sentence the chapter makes ("RNNPool-Face beats the LBP cascade at
    AP@0.5"); ``measured`` are the numbers behind it, printed in the failure message.
    """
    if not isinstance(statement, str) or not statement:
        raise TypeError("claim needs the statement it checks, as a non-empty string")
    if not holds:
        values = ", ".join(f"{k}={_short(v)}" for k, v in measured.items())
        raise ClaimFailed(f"claim failed: {statement}" + (f" (measured: {values})" if values else ""))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_short(v) for v in list(value)) + "]"
    return repr(value)


@dataclass(frozen=True)
class SeedStats:
    """Mean and spread (sample standard deviation, 0 for one seed) of a metric over seeds."""

    mean: float
    spread: float
    n: int
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.spread:.2g} (n={self.n})"


def seed_stats(values: Iterable[float]) -> SeedStats:
    """:class:`SeedStats` of one metric's values, one per seed."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("seed_stats needs at least one value")
    spread = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return SeedStats(float(arr.mean()), spread, int(arr.size), float(arr.min()), float(arr.max()))


def seed_summary(runs: pd.DataFrame, by: str | Sequence[str], metrics: str | Sequence[str]) -> pd.DataFrame:
    """Mean, spread (sample std), min, max and n of ``metrics`` per group of ``by`` (one row per seed in ``runs``)."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [c for c in [*([by] if isinstance(by, str) else by), *metrics] if c not in runs.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the runs table (has {list(runs.columns)})")
    table = runs.groupby(by, sort=False)[metrics].agg(["mean", "std", "min", "max", "count"])
    table = table.rename(columns={"std": "spread", "count": "n"}, level=1)
    return table.fillna({(m, "spread"): 0.0 for m in metrics})


@dataclass(frozen=True)
class Ordering:
    """Whether ``a`` beats ``b`` on a metric across seeds, and the sentence that says so."""

    a: str
    b: str
    a_stats: SeedStats
    b_stats: SeedStats
    holds: bool        # a's mean - spread clears b's mean + spread
    reversed: bool     # b's mean - spread clears a's mean + spread
    sentence: str


def ordering(a: str, a_values: Iterable[float], b: str, b_values: Iterable[float],
             metric: str = "accuracy", higher_is_better: bool = True, fmt: str = "{:.3g}") -> Ordering:
    """Compare two settings' per-seed values and write the sentence the chapter may print.

    The ordering is stated only where it clears the noise: ``mean(a) - spread(a) > mean(b) +
    spread(b)`` (spreads are sample standard deviations over seeds). Otherwise the sentence says
    the difference is within the seed spread. For ``higher_is_better=False`` (RAM, loss) "beats"
    means lower.
    """
    sa, sb = seed_stats(a_values), seed_stats(b_values)
    sign = 1.0 if higher_is_better else -1.0
    holds = sign * (sa.mean - sb.mean) > sa.spread + sb.spread
    rev = sign * (sb.mean - sa.mean) > sa.spread + sb.spread
    f = fmt.format
    stats = f"{a} {f(sa.mean)} ± {f(sa.spread)}, {b} {f(sb.mean)} ± {f(sb.spread)} over {sa.n} and {sb.n} seeds"
    if holds:
        sentence = f"{a} beats {b} on {metric} ({stats}); the gap is larger than the seed spread."
    elif rev:
        sentence = f"{b} beats {a} on {metric} ({stats}); the gap is larger than the seed spread."
    else:
        sentence = f"{a} and {b} are within seed noise of each other on {metric} ({stats})."
    return Ordering(a, b, sa, sb, bool(holds), bool(rev), sentence)


def environment() -> dict[str, Any]:
    """What decides a trained number's rounding on this machine: torch build, CPU capability, threads,
    and which RNNPool kernel runs (:func:`rnnpool_lite.op.compiled.selected_kernel`)."""
    import torch

    from rnnpool_lite.op.compiled import selected_kernel

    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "threads": torch.get_num_threads(),
        "rnnpool_kernel": selected_kernel(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
    }


def git_commit(directory: str | Path | None = None) -> str | None:
    """The git commit checked out at ``directory`` (default: the working directory), or ``None``.

    A results file records it so that the summary page merges only files of its own build.
    """
    try:
        run = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if run.returncode != 0:
        return None
    return run.stdout.strip() or None


def git_dirty(directory: str | Path | None = None, exclude: Iterable[str | Path] = ()) -> bool | None:
    """Whether tracked files at ``directory`` differ from the commit (``None`` outside a checkout).

    An evidence run records it: a run from uncommitted code cannot be replayed from its commit.
    ``exclude`` names folders whose changes do not count (a sweep's own output folder, whose
    tracked results a resumed sweep rewrites); those outside the checkout are ignored.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return None
        root = Path(top.stdout.strip())
        inside = [Path(p).resolve() for p in exclude if Path(p).resolve().is_relative_to(root)]
        pathspec = ["--", ":/", *(f":(exclude){p}" for p in inside)] if inside else []
        run = git("status", "--porcelain", "--untracked-files=no", *pathspec)
    except (OSError, subprocess.SubprocessError):
        return None
    if run.returncode != 0:
        return None
    return bool(run.stdout.strip())


def repository_root(path: str | Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds ``.git`` or ``pyproject.toml``, or ``None``.

    A sweep records its notebook relative to it and a replay finds the notebook from it, so an
    evidence folder names its notebook the same way in every clone (or unpacked archive).
    """
    start = Path(path).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return None



def repo_relative(path: str | Path) -> str:
    """``path`` relative to its repository's root (as a reader's clone has it), else absolute; the
    path need not exist (an evidence folder a command is about to create)."""
    path = Path(path).resolve()
    root = repository_root(path)
    return str(path.relative_to(root)) if root is not None else str(path)

@dataclass
class ChapterResults:
    """A chapter's "paper vs this book" rows, with what is needed to compare two machines' runs.

    >>> r = ChapterResults("05_visual_wake_words", parameters={"epochs": 12}, seeds=[0, 1, 2])
    >>> r.add("RAM ratio (base / RNNPool)", paper=8.0, ours=6.7, unit="x")
    """

    chapter: str
    parameters: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=environment)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    commit: str | None = field(default_factory=git_commit)

    def add(self, quantity: str, paper: Any, ours: Any, unit: str = "", spread: float | None = None,
            note: str = "") -> None:
        """One row: the paper's figure (``None`` where it has none), ours, and ours' seed spread."""
        if any(r["quantity"] == quantity for r in self.rows):
            raise ValueError(f"{self.chapter}: quantity {quantity!r} added twice")
        self.rows.append({"quantity": quantity, "paper": plain_value(paper), "ours": plain_value(ours),
                          "spread": plain_value(spread), "unit": unit, "note": note})

    def add_verdict(self, claim: str, comparison: PairedComparison, *, experiment: str, paper: str,
                    section: str = "", tier: str = "quick", resolve: str = "") -> None:
        """One claim of the paper, decided by a paired comparison over seeds (``rnnpool_lite.stats``).

        ``paper`` is what the paper reports, as text (``"+0.6 points (Table 2)"``); ``section`` is
        the chapter section that shows it (a MyST target or heading slug); ``tier`` says which run
        decided it (``"quick"``: this build's default run, ``"evidence"``: the committed evidence
        run); ``resolve`` says what would settle a verdict that is not "reproduced" (more seeds, more
        data, the paper's scale). The summary page's verdict table is built from these records.

        Raises ``ValueError`` for a claim added twice, and for an inconclusive or contradicted verdict
        without ``resolve``: a verdict against the paper is stated with what would change it, and an
        undecided one with what would decide it (for a contradicted one that is the scale or the
        data, not more seeds: its interval already excludes the paper's figure).
        """
        if any(v["claim"] == claim for v in self.verdicts):
            raise ValueError(f"{self.chapter}: verdict for {claim!r} added twice")
        if comparison.verdict != "reproduced" and not resolve.strip():
            raise ValueError(f"{self.chapter}: verdict for {claim!r} is {comparison.verdict}: pass resolve=, "
                             "what would change it (the scale, the data) or decide it (more seeds)")
        self.verdicts.append({
            "claim": claim, "experiment": experiment, "paper": paper, "section": section, "tier": tier,
            "resolve": resolve, "verdict": comparison.verdict, "kind": comparison.claim,
            "a": comparison.a_label, "b": comparison.b_label, "metric": comparison.metric,
            "n": comparison.n, "mean_difference": plain_value(comparison.mean_difference),
            "ci_low": plain_value(comparison.ci_low), "ci_high": plain_value(comparison.ci_high),
            "confidence": comparison.confidence, "method": comparison.method,
            "reversed": comparison.reversed, "smaller_than_paper": comparison.smaller_than_paper,
            "seeds_needed": comparison.seeds_needed, "sentence": comparison.sentence,
            "differences": [plain_value(d) for d in comparison.differences],
        })

    def verdict_frame(self) -> pd.DataFrame:
        """The verdict records as a table (one row per claim)."""
        columns = ["claim", "experiment", "paper", "a", "b", "n", "mean_difference", "ci_low", "ci_high",
                   "tier", "verdict", "reversed", "seeds_needed", "resolve", "section"]
        return pd.DataFrame(self.verdicts, columns=columns)

    def frame(self) -> pd.DataFrame:
        """The rows as a table (quantity as index)."""
        columns = ["quantity", "paper", "ours", "spread", "unit", "note"]
        return pd.DataFrame(self.rows, columns=columns).set_index("quantity")

    def save(self, directory: str | Path | None = None) -> Path:
        """Write ``<directory>/<chapter>.json`` (default: ``$RNNPOOL_LITE_RESULTS`` or ``results``)."""
        directory = Path(directory or os.environ.get(RESULTS_DIR_ENV, "results"))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.chapter}.json"
        path.write_text(json.dumps(asdict(self), indent=1, default=plain_value) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ChapterResults:
        """Read a file written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown or "chapter" not in data:
            raise ValueError(f"{path} is not a chapter results file (keys {sorted(data)})")
        return cls(**data)


def plain_value(value: Any) -> Any:
    """JSON-friendly Python version of numpy / torch scalars and arrays; a float NaN becomes None."""
    if isinstance(value, np.generic):
        value = value.item()
    elif hasattr(value, "tolist"):  # numpy arrays, torch tensors (a 0-d tensor gives a Python number)
        value = value.tolist()
    elif hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def display_value(value: Any) -> Any:
    """A number as a table shows it: 4 significant digits, in scientific notation where fixed
    notation would hide it (``2.1e-07``, not ``0.0``); anything else unchanged, ``None`` blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def load_all(directory: str | Path) -> dict[str, ChapterResults]:
    """Every ``*.json`` results file in ``directory``, by chapter name (empty if there is none)."""
    return {p.stem: ChapterResults.load(p) for p in sorted(Path(directory).glob("*.json"))}


def split_by_build(runs: dict[str, ChapterResults], commit: str | None,
                   since: datetime) -> tuple[dict[str, ChapterResults], dict[str, str]]:
    """Separate this build's results from leftovers of another run or commit.

    A results file belongs to the build when it was written at or after ``since`` (an aware
    datetime) from the same git ``commit``. Outside a git checkout (``commit`` is ``None``: a
    package installed on Colab, a downloaded archive) only files also written outside one qualify,
    by their time alone. Returns the build's files by chapter and, for every other file, why it is
    stale.
    """
    fresh: dict[str, ChapterResults] = {}
    stale: dict[str, str] = {}
    for chapter, run in runs.items():
        created = datetime.fromisoformat(run.created)
        if run.commit != commit:
            stale[chapter] = f"commit {(run.commit or 'unknown')[:10]}, not {(commit or 'unknown')[:10]}"
        elif created < since:
            stale[chapter] = f"written {run.created}, before this build ({since.isoformat(timespec='seconds')})"
        else:
            fresh[chapter] = run
    return fresh, stale


def compare(a: str | Path, b: str | Path, rtol: float = 0.0) -> pd.DataFrame:
    """Rows whose ``ours`` differs between two results files or folders (relative tolerance ``rtol``).

    Also lists the parameters and environment entries that differ, as rows with quantity
    ``parameter:<name>`` / ``environment:<name>``, so the cause of a difference is next to it.
    Two sweep folders (each with ``results.csv`` and ``provenance.json``) are compared by
    :func:`compare_sweeps` instead.
    """
    if _is_sweep(Path(a)) and _is_sweep(Path(b)):
        return compare_sweeps(a, b, rtol)
    runs_a, runs_b = _runs(Path(a)), _runs(Path(b))
    out = []
    for chapter in sorted(set(runs_a) | set(runs_b)):
        ra, rb = runs_a.get(chapter), runs_b.get(chapter)
        if ra is None or rb is None:
            out.append({"chapter": chapter, "quantity": "(chapter)", "a": ra is not None, "b": rb is not None})
            continue
        for kind, da, db in (("parameter", ra.parameters, rb.parameters),
                             ("environment", ra.environment, rb.environment)):
            for key in sorted(set(da) | set(db)):
                if da.get(key) != db.get(key):
                    out.append({"chapter": chapter, "quantity": f"{kind}:{key}", "a": da.get(key), "b": db.get(key)})
        rows_a = {r["quantity"]: r["ours"] for r in ra.rows}
        rows_b = {r["quantity"]: r["ours"] for r in rb.rows}
        for quantity in list(rows_a) + [q for q in rows_b if q not in rows_a]:
            va, vb = rows_a.get(quantity), rows_b.get(quantity)
            if not _same(va, vb, rtol):
                out.append({"chapter": chapter, "quantity": quantity, "a": va, "b": vb})
    return pd.DataFrame(out, columns=["chapter", "quantity", "a", "b"])


SWEEP_COLUMNS = ("status", "error", "duration_s", "cpu_s", "skipped", "notebook")  # a sweep's own, not recorded


def _is_sweep(path: Path) -> bool:
    return (path / "results.csv").is_file() and (path / "provenance.json").is_file()


def _cell(value: Any) -> Any:
    """A results.csv cell as a value: lists and dicts (written as their repr) parsed back; NaN -> None."""
    if isinstance(value, str) and value[:1] in "[{(":
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return plain_value(value)


def _provenance(path: Path) -> dict[str, Any]:
    """What made a sweep folder's runs: commits, dirty flag, devices (of the invocations that ran
    anything), the last grid and the last environment, flat as ``{entry: value}``."""
    invocations = json.loads((path / "provenance.json").read_text()).get("invocations", [])
    ran = [inv for inv in invocations if inv.get("runs_executed")] or invocations
    last = ran[-1] if ran else {}
    out = {"commit": ", ".join(dict.fromkeys(str(inv.get("commit")) for inv in ran)),
           "dirty": any(bool(inv.get("dirty")) for inv in ran),
           "device": ", ".join(dict.fromkeys(str(inv.get("device")) for inv in ran)),
           "grid": last.get("grid")}
    return out | {f"environment:{k}": v for k, v in last.get("environment", {}).items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _difference(a: Any, b: Any) -> Any:
    """``b - a`` for numbers, element by element for equally long lists of numbers, else ``None``."""
    if _number(a) and _number(b):
        return b - a
    if (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
            and all(_number(x) and _number(y) for x, y in zip(a, b))):
        return [y - x for x, y in zip(a, b)]
    return None


def _same_value(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y, rtol) for x, y in zip(a, b))
    return _same(a, b, rtol)


def _finished_runs(table: pd.DataFrame, names: list[str]) -> dict[str, dict[str, Any]]:
    """A results table's finished rows by their parameters (``names``, as JSON), values parsed."""
    runs = {}
    for row in table.to_dict("records"):
        if row.get("status") == "ok":
            values = {k: _cell(v) for k, v in row.items()}
            # a parameter set by only some grids of a list is a float column (NaN elsewhere): 2.0 is 2
            params = {k: int(v) if isinstance(v, float) and v.is_integer() else v
                      for k in names if (v := values.get(k)) is not None}
            runs[json.dumps(params, sort_keys=True, default=str)] = values
    return runs


def compare_sweeps(a: str | Path, b: str | Path, rtol: float = 0.0) -> pd.DataFrame:
    """What differs between two sweep folders: per combination (matched by the grid's parameters),
    every recorded value that differs (``a``, ``b`` and ``difference`` = b - a, element-wise for
    lists; relative tolerance ``rtol``), and a ``(run)`` row for a combination finished in one folder
    only; then the provenance entries that differ (commit, dirty, device, grid, environment),
    with run ``(provenance)``. Timing columns are not compared.
    """
    a, b = Path(a), Path(b)
    prov_a, prov_b = _provenance(a), _provenance(b)
    grids = [g for p in (prov_a, prov_b) for g in (p["grid"] if isinstance(p["grid"], list) else [p["grid"] or {}])]
    names = list(dict.fromkeys(k for grid in grids for k in grid))
    runs_a = _finished_runs(pd.read_csv(a / "results.csv"), names)
    runs_b = _finished_runs(pd.read_csv(b / "results.csv"), names)
    out = []
    for key in list(runs_a) + [k for k in runs_b if k not in runs_a]:
        ra, rb = runs_a.get(key), runs_b.get(key)
        label = ", ".join(f"{k}={v}" for k, v in json.loads(key).items())
        if ra is None or rb is None:
            out.append({"run": label, "quantity": "(run)", "a": ra is not None, "b": rb is not None})
            continue
        for column in list(ra) + [c for c in rb if c not in ra]:
            va, vb = ra.get(column), rb.get(column)
            if column not in names and column not in SWEEP_COLUMNS and not _same_value(va, vb, rtol):
                out.append({"run": label, "quantity": column, "a": va, "b": vb, "difference": _difference(va, vb)})
    for key in list(prov_a) + [k for k in prov_b if k not in prov_a]:
        if prov_a.get(key) != prov_b.get(key):
            out.append({"run": "(provenance)", "quantity": key, "a": prov_a.get(key), "b": prov_b.get(key)})
    return pd.DataFrame(out, columns=["run", "quantity", "a", "b", "difference"])


def _runs(path: Path) -> dict[str, ChapterResults]:
    if path.is_dir():
        return load_all(path)
    if path.is_file():
        run = ChapterResults.load(path)
        return {run.chapter: run}
    raise FileNotFoundError(f"no results file or folder at {path}")


def _same(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or a == b
    return a == b


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnpool_lite.repro.results",
                                     description="Compare two machines' chapter results or sweep folders.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser("compare", help="print the numbers, parameters and environment that differ")
    cmp.add_argument("a", type=Path, help="a results/<chapter>.json file, a results/ folder, or a sweep's "
                     "folder (results.csv and provenance.json: an evidence run, a rerun of its grid)")
    cmp.add_argument("b", type=Path)
    cmp.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default 0)")
    args = parser.parse_args(argv)
    try:
        table = compare(args.a, args.b, args.rtol)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if table.empty:
        print("no differences")
    else:
        with pd.option_context("display.max_rows", None, "display.width", 160, "display.max_colwidth", 60):
            print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
