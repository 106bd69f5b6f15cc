"""The sweep CLI on a tiny notebook: a 2x2 grid, two workers, one failing run, reuse on rerun."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import nbformat
import pytest
import torch

import rnnpool_lite
from rnnpool_lite.repro.sweep import combinations, load_grid, main, parameter_names, run_key, sweep


def _notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("a = 1\nb = 10")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("if a == 2 and b == 20:\n    raise ValueError('bad combination')"),
        nbformat.v4.new_code_cell("from rnnpool_lite.repro.sweep import record\n"
                                  "record('product', a * b)\nrecord('label', f'{a}-{b}')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_grid_helpers(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text("a: [1, 2]\nb: 3\n")
    grid = load_grid(tmp_path / "g.yaml")
    assert combinations(grid) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert run_key({"a": 1, "b": 3}) != run_key({"a": 1, "b": "3"})
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_grid(tmp_path / "bad.yaml")


def test_a_list_of_grids_runs_the_union_of_their_products(tmp_path: Path) -> None:
    """Ablation rows that are not a product (Table 16: patch 8; two pools), each over seeds."""
    (tmp_path / "g.yaml").write_text("- {patch: [6, 8], seed: [0, 1]}\n- {patch: 6, pools: 2, seed: [0, 1]}\n"
                                     "- {patch: 6, seed: 1}\n")
    grid = load_grid(tmp_path / "g.yaml")
    assert combinations(grid) == [{"patch": 6, "seed": 0}, {"patch": 6, "seed": 1}, {"patch": 8, "seed": 0},
                                  {"patch": 8, "seed": 1}, {"patch": 6, "pools": 2, "seed": 0},
                                  {"patch": 6, "pools": 2, "seed": 1}]  # the repeated {6, 1} runs once
    assert parameter_names(grid) == ["patch", "seed", "pools"]
    (tmp_path / "bad.yaml").write_text("- {a: [1]}\n- {b: []}\n")
    with pytest.raises(ValueError, match="item 1: parameter 'b'"):
        load_grid(tmp_path / "bad.yaml")


def test_sweep_runs_records_fails_and_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    _notebook(tmp_path / "nb.ipynb")
    (tmp_path / "grid.yaml").write_text("a: [1, 2]\nb: [10, 20]\n")
    out = tmp_path / "out"

    table = sweep(tmp_path / "nb.ipynb", load_grid(tmp_path / "grid.yaml"), out, jobs=2)
    assert table[["a", "b"]].values.tolist() == [[1, 10], [1, 20], [2, 10], [2, 20]]
    assert table["status"].tolist() == ["ok", "ok", "ok", "failed"]
    assert table["product"].tolist()[:3] == [10, 20, 20] and table["label"][0] == "1-10"
    assert "ValueError: bad combination" in table["error"][3]
    assert (out / "results.csv").is_file() and not table["skipped"].any()
    assert (table["cpu_s"] > 0.2).all()  # the kernel start-up (IPython, ipykernel imports) is counted
    # each run's kernel logs (Jupyter's own lines) into its own file, not the caller's stderr
    logs = sorted((out / "runs").glob("*.log"))
    assert len(logs) == 4 and all("IPKernelApp" in p.read_text() for p in logs)
    first = json.loads((out / "provenance.json").read_text())["invocations"]
    assert len(first) == 1
    assert first[0]["command"].startswith(f"sweep({str(tmp_path / 'nb.ipynb')!r}, grid, ")  # outside a repository
    assert first[0]["grid"] == {"a": [1, 2], "b": [10, 20]} and first[0]["notebook"] == str(tmp_path / "nb.ipynb")
    assert (first[0]["runs_executed"], first[0]["runs_failed"], first[0]["runs_reused"]) == (4, 1, 0)
    assert first[0]["environment"]["torch"] == torch.__version__ and first[0]["device"].startswith(("cpu", "cuda"))
    assert first[0]["commit"] is None and first[0]["dirty"] is None  # tmp_path is no git checkout
    assert first[0]["cpu_s"] >= 4 * 0.2 and first[0]["wall_s"] > 0
    run = json.loads((out / "runs" / f"{run_key({'a': 1, 'b': 10})}.json").read_text())
    assert run["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "commit" in run

    # rerun through the CLI's main(): the three good runs are reused, the failure is retried and reported
    done = sorted((out / "runs").glob("*.ipynb"))
    stamps = [p.stat().st_mtime_ns for p in done]
    code = main([str(tmp_path / "nb.ipynb"), "--grid", str(tmp_path / "grid.yaml"), "--jobs", "2",
                 "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 1
    assert "3 reused, 3 ok, 1 failed" in printed.out
    assert "FAILED {'a': 2, 'b': 20}: ValueError: bad combination" in printed.err
    changed = [p.name for p, s in zip(done, stamps) if p.stat().st_mtime_ns != s]
    assert changed == [f"{run_key({'a': 2, 'b': 20})}.ipynb"]
    import pandas as pd
    again = pd.read_csv(out / "results.csv")
    assert again["skipped"].tolist() == [True, True, True, False]
    # the resumed invocation is appended to provenance.json, the first one kept as it was
    both = json.loads((out / "provenance.json").read_text())["invocations"]
    assert both[0] == first[0]
    assert both[1]["command"] == shlex.join(["python", "-m", "rnnpool_lite.repro.sweep", str(tmp_path / "nb.ipynb"),
                                             "--grid", str(tmp_path / "grid.yaml"), "--jobs", "2", "--out", str(out)])
    assert (both[1]["runs_executed"], both[1]["runs_failed"], both[1]["runs_reused"]) == (1, 1, 3)


def test_a_killed_sweep_leaves_partial_results_and_provenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A session that ends mid-sweep: the finished run is in results.csv, the other "pending", and
    the provenance entry says what had been done; load_evidence reads it as partial evidence."""
    import pandas as pd

    import rnnpool_lite.repro.sweep as sweep_module
    from rnnpool_lite.repro.evidence import load_evidence

    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    _notebook(tmp_path / "nb.ipynb")
    (tmp_path / "grid.yaml").write_text("a: [1, 3]\nb: [10]\n")
    out = tmp_path / "out"
    save = sweep_module._save_run
    calls = []

    def save_then_die(folder: Path, result: dict) -> dict:
        if calls:
            raise KeyboardInterrupt  # the session ends before the second run is written
        calls.append(result["key"])
        return save(folder, result)

    monkeypatch.setattr(sweep_module, "_save_run", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path / "nb.ipynb", load_grid(tmp_path / "grid.yaml"), out, jobs=1)
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["status"]) == ["ok", "pending"]
    entry = json.loads((out / "provenance.json").read_text())["invocations"][-1]
    assert entry["finished"] is None and entry["updated"] >= entry["started"]
    assert (entry["runs_executed"], entry["runs_planned"]) == (1, 2)
    (out / "grid.yaml").write_text((tmp_path / "grid.yaml").read_text())
    evidence = load_evidence(out)
    assert evidence is not None and not evidence.complete
    assert (len(evidence.runs), evidence.failed, evidence.planned) == (1, 0, 2)

    monkeypatch.setattr(sweep_module, "_save_run", save)  # the next session resumes
    table = sweep(tmp_path / "nb.ipynb", load_grid(tmp_path / "grid.yaml"), out, jobs=1)
    assert table["status"].tolist() == ["ok", "ok"] and table["skipped"].sum() == 1
    both = json.loads((out / "provenance.json").read_text())["invocations"]
    assert len(both) == 2 and both[1]["finished"] is not None and both[1]["runs_reused"] == 1
    assert load_evidence(out).complete  # type: ignore[union-attr]


def _two_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The tiny notebook and a grid of two runs, one that fails."""
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    _notebook(tmp_path / "nb.ipynb")
    (tmp_path / "grid.yaml").write_text("a: [1, 2]\nb: [20]\n")
    return tmp_path / "nb.ipynb", tmp_path / "grid.yaml"


def _check_resumed(out: Path, printed: str) -> None:
    import pandas as pd

    assert "2 runs: 1 reused, 1 ok, 1 failed" in printed
    table = pd.read_csv(out / "results.csv")
    assert table["skipped"].tolist() == [True, False] and table["status"].tolist() == ["ok", "failed"]
    assert table["product"][0] == 20 and "ValueError: bad combination" in table["error"][1]


def test_sweep_on_a_dask_cluster_writes_the_same_folder_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    distributed = pytest.importorskip("distributed")
    notebook, grid = _two_runs(tmp_path, monkeypatch)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        executor = cluster.scheduler_address.replace("tcp://", "dask://")
        command = [str(notebook), "--grid", str(grid), "--out", str(out), "--executor", executor]
        assert main(command) == 1
        first = capsys.readouterr()
        assert "2 runs: 0 reused, 1 ok, 1 failed" in first.out
        ok = out / "runs" / f"{run_key({'a': 1, 'b': 20})}.ipynb"
        stamp = ok.stat().st_mtime_ns
        log = ok.with_suffix(".log").read_text()
        assert "IPKernelApp" in log  # the kernel's stderr went to the run's log, written by this process
        assert main(command) == 1  # the same command again: the finished run is not repeated
        _check_resumed(out, capsys.readouterr().out)
        assert ok.stat().st_mtime_ns == stamp


def test_sweep_through_submitit_writes_the_same_folder_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The SLURM path, on submitit's local executor (each run a subprocess started by submitit)."""
    pytest.importorskip("submitit")
    notebook, grid = _two_runs(tmp_path, monkeypatch)
    out = tmp_path / "out"
    command = [str(notebook), "--grid", str(grid), "--out", str(out), "--executor", "slurm",
               "--slurm-cluster", "local", "--slurm-time", "5", "--slurm-cpus", "1"]
    assert main(command) == 1
    assert "2 runs: 0 reused, 1 ok, 1 failed" in capsys.readouterr().out
    assert list((out / "slurm").iterdir())  # submitit's job files live beside the runs
    assert main(command) == 1
    _check_resumed(out, capsys.readouterr().out)


def test_bad_executor_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _notebook(tmp_path / "nb.ipynb")
    (tmp_path / "grid.yaml").write_text("a: [1]\n")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nb.ipynb"), "--grid", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "o"),
              "--executor", "dask://"])
    assert "executor must be 'local', 'slurm' or 'dask://HOST:PORT'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="executor must be"):
        sweep(tmp_path / "nb.ipynb", {"a": [1]}, tmp_path / "o", executor="ray")
    from rnnpool_lite.repro.executors import SlurmOptions

    with pytest.raises(ValueError, match="submitit cluster must be one of"):
        SlurmOptions(cluster="pbs")


def test_slurm_options_become_the_jobs_sbatch_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLURM here: a stand-in ``srun`` on PATH is all submitit checks before it writes sbatch files."""
    pytest.importorskip("submitit")
    from rnnpool_lite.repro.executors import SlurmOptions, open_executor

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "bin"), os.environ["PATH"]]))
    options = SlurmOptions(partition="gpu", time_min=30, cpus=4, gpus=1, mem_gb=16)
    with open_executor("slurm", folder=tmp_path / "slurm", slurm=options) as pool:
        parameters = pool._executor._executor.parameters
    assert parameters == {"job_name": "rnnpool_lite-sweep", "time": 30, "cpus_per_task": 4, "gpus_per_node": 1,
                          "mem": "16GB", "partition": "gpu"}
