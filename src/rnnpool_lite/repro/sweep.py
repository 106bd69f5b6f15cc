"""Run a chapter notebook over a grid of parameters and collect what each run records.

    python -m rnnpool_lite.repro.sweep NOTEBOOK --grid grid.yaml --out DIR [--jobs N] [--executor WHERE]

``grid.yaml`` maps each papermill parameter to a list of values; every combination (the Cartesian
product, in file order) is executed (a YAML *list* of such mappings runs the union of their
products, for ablations whose rows are not a product: "patch 8" and "two pools" each with 3 seeds)
with papermill into ``DIR/runs/<key>.ipynb``. Inside the notebook, a value is reported with
:func:`record`; after the run the executed notebook is read back with nbformat and the recorded
values become columns of ``DIR/results.csv`` (one row per combination, with ``status``, ``error``,
``duration_s`` and ``cpu_s``; rewritten after every run, a run not finished yet is ``pending``). A
combination whose ``DIR/runs/<key>.json`` says ``ok`` is not run again, so an interrupted or
extended sweep only runs what is missing; failed runs are retried and report the notebook's
exception (``ename: evalue`` and the cell that raised it). ``cpu_s`` is the CPU time (user + system)
of the run: the process that ran it and the kernel it started and reaped, which the caller's own CPU
accounting never sees. What a run's kernel writes to stderr (Jupyter's own log lines included) goes
to ``DIR/runs/<key>.log``, not to the caller's terminal or notebook cell.

Where the runs execute (``--executor``), with the same command and the same output folder:

- ``local`` (default): ``N`` (``--jobs``) processes on this machine (``ProcessPoolExecutor``).
- ``dask://HOST:PORT``: the workers of a running Dask cluster (``distributed.Client(address)
  .get_executor()``); the cluster's workers decide how many runs go at once.
- ``slurm``: one SLURM job per run through submitit (``--slurm-partition``, ``--slurm-time`` and
  the other ``--slurm-*`` options); submitit keeps its job files in ``DIR/slurm``, so ``DIR`` must be
  on the file system the nodes share, as the checkout must be.

A run executes in a scratch folder of the worker and returns the executed notebook, its log and its
records; this process writes them into ``DIR``. So on Dask only the checkout (the notebook and an
importable ``rnnpool_lite``, at the same path) must be on the workers, and which runs are done is
known from ``DIR`` alone. A worker process runs one notebook at a time (papermill changes the
process's working directory and the kernel inherits the process's stderr), so give Dask workers one
thread each (``dask worker --nthreads 1``) and scale with their number.

Provenance: every invocation appends an entry to ``DIR/provenance.json``: the command (as typed on
the command line, or the call), the notebook, the grid, the executor, the git commit and whether
tracked files differed from it, the environment that decides float rounding (torch, CPU capability,
threads), the device, start and end times, wall and CPU seconds, and how many runs it executed or
reused; the entry is rewritten after every run, so a sweep that is killed (a session's end) leaves
``finished`` empty and says what it had done by ``updated``. Each run's ``runs/<key>.json`` also
names the commit, environment and device it ran with (those of the worker that ran it: with Dask or
SLURM not the invoking machine's), so a folder filled over several sessions or machines says which
runs came from which code and where.

Why not scrapbook: it would be one more dependency whose releases have stalled; ``record`` needs
only IPython's ``display`` with a custom mimetype, which nbformat stores verbatim in the output
notebook.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import re
import resource
import shlex
import sys
import tempfile
import threading
import time
from concurrent.futures import as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from rnnpool_lite.repro.executors import SUBMITIT_CLUSTERS, SlurmOptions, check_executor_spec, open_executor
from rnnpool_lite.repro.results import environment, git_commit, git_dirty, plain_value, repo_relative

MIMETYPE = "application/x.rnnpool-lite.record+json"
PENDING = "pending"  # results.csv status of a combination whose run has not finished (yet)


def record(name: str, value: Any) -> None:
    """Report ``value`` under ``name`` from inside a notebook run by the sweep.

    Displays a JSON payload with a custom mimetype (invisible in Jupyter's rendering, kept in the
    saved notebook). ``value`` must be JSON-serialisable after numpy/torch scalars become Python.
    """
    from IPython.display import display

    if not isinstance(name, str) or not name:
        raise TypeError(f"record name must be a non-empty string, got {name!r}")
    payload = {"name": name, "value": plain_value(value)}
    json.dumps(payload)  # fail here, with the value's type in the message, not in the kernel
    display({MIMETYPE: payload}, raw=True)


def read_records(notebook: str | Path) -> dict[str, Any]:
    """Values recorded in an executed notebook, ``{name: value}`` (a later record wins)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(MIMETYPE)
            if payload is not None:
                out[payload["name"]] = payload["value"]
    return out


Grid = dict[str, list] | list[dict[str, list]]


def _one_grid(grid: Any, where: str) -> dict[str, list]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{where}: expected a mapping 'parameter: [values, ...]' (or a list of them), "
                         f"got {type(grid).__name__}")
    out = {}
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not isinstance(key, str) or not values:
            raise ValueError(f"{where}: parameter {key!r} needs a string name and at least one value")
        out[key] = values
    return out


def load_grid(path: str | Path) -> Grid:
    """Read ``grid.yaml``: a mapping parameter -> non-empty list of values (a scalar means [scalar]),
    or a non-empty list of such mappings (the union of their products)."""
    grid = yaml.safe_load(Path(path).read_text())
    if isinstance(grid, list) and grid and all(isinstance(g, dict) for g in grid):
        return [_one_grid(g, f"{path} item {i}") for i, g in enumerate(grid)]
    return _one_grid(grid, str(path))


def combinations(grid: Grid) -> list[dict[str, Any]]:
    """Every parameter combination, in the grid's order (last parameter varies fastest).

    A list of grids gives the union of their products, in list order, each combination once.
    """
    grids = grid if isinstance(grid, list) else [grid]
    out: dict[str, dict[str, Any]] = {}
    for g in grids:
        for values in itertools.product(*g.values()):
            params = dict(zip(g, values))
            out.setdefault(run_key(params), params)
    return list(out.values())


def parameter_names(grid: Grid) -> list[str]:
    """The parameters a grid sets, in first-seen order."""
    grids = grid if isinstance(grid, list) else [grid]
    return list(dict.fromkeys(k for g in grids for k in g))


def run_key(params: dict[str, Any]) -> str:
    """File-name-safe, readable, unique key of one combination: 'a=1_b=x-<hash>'."""
    text = "_".join(f"{k}={v}" for k, v in params.items())
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "-", text)[:80]
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its reaped children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _device() -> str:
    """What the runs train on where this process runs: the GPU's name, or the CPU's."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


#: How long a run's kernel may take to start. papermill's default, 60 s, was not enough on a 2-core
#: machine at load 10 (a test run of chapter 10 failed with "Kernel didn't respond in 60 seconds").
KERNEL_START_TIMEOUT_S = 600

# papermill changes the process's working directory, and the kernel inherits file descriptor 2: one
# run at a time per process, whatever thread (a Dask worker's, a submitit waiter's) starts it
_RUN_LOCK = threading.Lock()


def run_one(notebook: str, params: dict[str, Any], kernel: str | None, timeout: float | None) -> dict[str, Any]:
    """Execute one combination in a scratch folder; return its result with the executed notebook and log.

    Runs wherever the executor puts it (a local process, a Dask worker, a SLURM job): it writes
    nothing into the sweep's output folder, the caller does. A replay
    (:mod:`rnnpool_lite.repro.replay`) executes its run through it too.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    key = run_key(params)
    status, error, records = "ok", "", {}
    with _RUN_LOCK, tempfile.TemporaryDirectory(prefix="rnnpool-sweep-") as scratch:
        output, log_path = Path(scratch) / f"{key}.ipynb", Path(scratch) / f"{key}.log"
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        with open(log_path, "wb") as log:
            saved_stderr = os.dup(2)
            os.dup2(log.fileno(), 2)  # the kernel subprocess inherits file descriptor 2
            try:
                pm.execute_notebook(notebook, str(output), parameters=params, kernel_name=kernel,
                                    progress_bar=False, log_output=False, execution_timeout=timeout,
                                    start_timeout=KERNEL_START_TIMEOUT_S,
                                    cwd=str(Path(notebook).resolve().parent))
                records = read_records(output)
            except PapermillExecutionError as err:
                status = "failed"
                error = f"{err.ename}: {err.evalue} (execution count {err.exec_count})"
            except Exception as err:  # kernel died, bad notebook, timeout: still one row, not a crash
                status, error = "failed", f"{type(err).__name__}: {err}"
            finally:
                os.dup2(saved_stderr, 2)
                os.close(saved_stderr)
        duration, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        executed = output.read_text() if output.is_file() else None
        log_text = log_path.read_text(errors="replace")
    return {"key": key, "params": params, "status": status, "error": error, "records": records,
            "duration_s": round(duration, 2), "cpu_s": round(cpu, 2), "host": platform.node(),
            "commit": git_commit(Path(notebook).parent), "environment": environment(), "device": _device(),
            "executed": executed, "log": log_text}


def _save_run(out: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write a finished run's notebook, log and ``runs/<key>.json``; return the json's content."""
    runs = out / "runs"
    key = result["key"]
    notebook = runs / f"{key}.ipynb"
    if result["executed"] is not None:
        notebook.write_text(result["executed"])
    (runs / f"{key}.log").write_text(result["log"])
    saved = {k: v for k, v in result.items() if k not in ("executed", "log")}
    saved["notebook"] = str(notebook)
    (runs / f"{key}.json").write_text(json.dumps(saved, default=str))
    return saved


def _write_provenance(out: Path, entry: dict[str, Any], index: int | None) -> int:
    """Append ``entry`` to ``out/provenance.json`` (``index`` None) or replace entry ``index``;
    return its index. The sweep rewrites its entry after every run, so a sweep killed with its
    session leaves an entry that says what it had done (``finished`` None, ``updated`` its last run)."""
    path = out / "provenance.json"
    data = json.loads(path.read_text()) if path.is_file() else {"invocations": []}
    if index is None:
        data["invocations"].append(entry)
        index = len(data["invocations"]) - 1
    else:
        data["invocations"][index] = entry
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return index


def _table(combos: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per combination: its finished result, or ``status`` "pending" when it has not run."""
    rows = []
    for params in combos:
        r = results.get(run_key(params))
        if r is None:
            rows.append({**params, "status": PENDING, "error": None, "duration_s": None, "cpu_s": None,
                         "skipped": False, "notebook": None})
            continue
        rows.append({**params, **r["records"], "status": r["status"], "error": r["error"],
                     "duration_s": r["duration_s"], "cpu_s": r.get("cpu_s"), "skipped": r["skipped"],
                     "notebook": r["notebook"]})
    return pd.DataFrame(rows)


def sweep(notebook: str | Path, grid: Grid, out: str | Path, jobs: int = 1, kernel: str | None = None,
          timeout: float | None = None, executor: str = "local", slurm: SlurmOptions | None = None,
          command: str | None = None) -> pd.DataFrame:
    """Run every combination not already done; write and return the results table.

    ``executor`` is "local" (``jobs`` processes), "dask://HOST:PORT" or "slurm" (with ``slurm``'s
    options); see the module docstring. Returns a DataFrame with one row per combination: the
    parameters, every recorded value, ``status`` ("ok" | "failed"), ``error``, ``duration_s``,
    ``cpu_s``, ``skipped`` (True when an earlier run's result was reused) and ``notebook`` (the
    executed copy). Also written to ``out/results.csv``. Each run's files, the table (unfinished
    runs as ``status`` "pending") and this invocation's provenance entry are written as each run
    finishes, so an interrupted sweep keeps every run that completed, readable as partial evidence. ``command`` is what
    ``out/provenance.json`` records as the invocation (default: the Python call).
    """
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    check_executor_spec(executor)
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    combos = combinations(grid)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for params in combos:
        done = out / "runs" / f"{run_key(params)}.json"
        previous = json.loads(done.read_text()) if done.is_file() else None
        if previous is not None and previous["status"] == "ok":
            results[run_key(params)] = {**previous, "skipped": True}
        else:
            todo.append(params)
    started, wall_start = datetime.now(UTC), time.perf_counter()
    # the code the runs start from (a commit made while they run does not change it); the output
    # folder's own tracked files (committed evidence that a resumed sweep rewrites) do not count
    commit, dirty = git_commit(notebook.parent), git_dirty(notebook.parent, exclude=[out])
    # what stays fixed for this invocation, read once; entry() adds what its runs have done so far
    shown_notebook = repo_relative(notebook)
    fixed = {
        "command": command or f"sweep({shown_notebook!r}, grid, {str(out)!r}, jobs={jobs}, executor={executor!r})",
        "notebook": shown_notebook, "grid": grid, "executor": executor, "jobs": jobs,
        "commit": commit, "dirty": dirty,
        "environment": environment(), "device": _device(), "host": platform.node(),
        "started": started.isoformat(timespec="seconds")}

    def entry(finished: bool) -> dict[str, Any]:
        executed = [r for r in results.values() if not r["skipped"]]
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return {
            **fixed, "updated": now,
            "finished": now if finished else None,
            "wall_s": round(time.perf_counter() - wall_start, 1),
            "cpu_s": round(sum(r.get("cpu_s") or 0.0 for r in executed), 1),
            "runs_executed": len(executed), "runs_failed": sum(r["status"] != "ok" for r in executed),
            "runs_reused": sum(bool(r["skipped"]) for r in results.values()),
            "runs_planned": len(combos)}

    # the table and this invocation's provenance entry are rewritten after every run, so a folder
    # whose sweep was killed (a session's end) is read like a finished one, its missing runs "pending"
    index = _write_provenance(out, entry(finished=False), None)
    _table(combos, results).to_csv(out / "results.csv", index=False)
    if todo:
        with open_executor(executor, jobs, out / "slurm", slurm) as pool:
            futures = [pool.submit(run_one, str(notebook), p, kernel, timeout) for p in todo]
            bar = tqdm(as_completed(futures), total=len(todo), desc=f"sweep {notebook.stem}", unit="run",
                       disable=None)
            for future in bar:
                saved = _save_run(out, future.result())
                results[saved["key"]] = {**saved, "skipped": False}
                _write_provenance(out, entry(finished=False), index)
                _table(combos, results).to_csv(out / "results.csv", index=False)
    _write_provenance(out, entry(finished=True), index)
    table = _table(combos, results)
    table.to_csv(out / "results.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnpool_lite.repro.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="notebook with a cell tagged 'parameters'")
    parser.add_argument("--grid", required=True, help="YAML file: parameter -> list of values")
    parser.add_argument("--out", required=True, help="output folder (runs/ and results.csv)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time (local executor)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per cell")
    parser.add_argument("--executor", default="local",
                        help="where runs execute: local (default), dask://HOST:PORT (a Dask scheduler) or slurm")
    slurm = parser.add_argument_group("SLURM (--executor slurm, through submitit; job files in OUT/slurm)")
    slurm.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's)")
    slurm.add_argument("--slurm-time", type=int, default=60, help="time limit per run, minutes (default 60)")
    slurm.add_argument("--slurm-cpus", type=int, default=2, help="CPUs per run (default 2)")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per run (default 0)")
    slurm.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per run, GB (default: the cluster's)")
    slurm.add_argument("--slurm-cluster", choices=SUBMITIT_CLUSTERS, default="slurm",
                       help="submitit executor: slurm, or local / debug to try the sweep on this machine")
    args = parser.parse_args(argv)
    try:
        check_executor_spec(args.executor)
    except ValueError as error:
        parser.error(str(error))
    options = SlurmOptions(args.slurm_partition, args.slurm_time, args.slurm_cpus, args.slurm_gpus,
                           args.slurm_mem_gb, args.slurm_cluster)
    command = shlex.join(["python", "-m", "rnnpool_lite.repro.sweep", *(sys.argv[1:] if argv is None else argv)])
    table = sweep(args.notebook, load_grid(args.grid), args.out, args.jobs, args.kernel, args.timeout,
                  args.executor, options, command=command)
    failed = table[table["status"] != "ok"]
    print(f"{len(table)} runs: {int(table['skipped'].sum())} reused, "
          f"{len(table) - len(failed)} ok, {len(failed)} failed -> {Path(args.out) / 'results.csv'}")
    params = parameter_names(load_grid(args.grid))
    for _, row in failed.iterrows():
        print(f"FAILED {dict(row[params])}: {row['error']}", file=sys.stderr)
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
