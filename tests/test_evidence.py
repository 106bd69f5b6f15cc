"""load_evidence: a committed grid is required; no finished run is None; the paragraph says what ran where.
Every committed evidence folder still replays with today's code."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rnnpool_lite.repro.evidence import chapter_evidence, load_evidence, sweep_command
from rnnpool_lite.repro.replay import replay

COMMITTED = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "results" / "evidence").glob(
    "*/provenance.json"))


def _invocation(commit: str, executed: int, wall_s: float, capability: str) -> dict:
    return {"command": "python -m rnnpool_lite.repro.sweep notebooks/runs/x.ipynb --grid g --out o",
            "commit": commit, "dirty": False, "environment": {"torch": "2.13.0", "cpu_capability": capability},
            "device": "cpu: x86_64, 2 cores", "wall_s": wall_s, "runs_executed": executed}


def _folder(tmp_path: Path, statuses: list[str] | None, invocations: list[dict] | None = None) -> Path:
    """An evidence folder: grid.yaml over 4 runs, and results.csv / provenance.json when given."""
    (tmp_path / "grid.yaml").write_text("model: [base, rnnpool]\nseed: [0, 1]\n")
    if statuses is not None:
        rows = [{"model": m, "seed": s, "accuracy": 0.5, "status": status, "cpu_s": 1800.0,
                 "error": "FloatingPointError: loss became nan at step 353" if status == "failed" else None}
                for (m, s), status in zip([("base", 0), ("base", 1), ("rnnpool", 0), ("rnnpool", 1)], statuses)]
        pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    if invocations is not None:
        (tmp_path / "provenance.json").write_text(json.dumps({"invocations": invocations}))
    return tmp_path


def test_evidence_starts_from_a_committed_grid(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="grid.yaml does not exist"):
        load_evidence(tmp_path)
    assert load_evidence(_folder(tmp_path, None)) is None  # a fresh grid: nothing has run
    assert load_evidence(_folder(tmp_path, ["failed", "failed"])) is None  # nothing finished


def test_partial_evidence_is_not_complete_and_says_so(tmp_path: Path) -> None:
    evidence = load_evidence(_folder(tmp_path, ["ok", "ok", "failed"],
                                     [_invocation("a" * 40, 3, 3600.0, "AVX512")]))
    assert evidence is not None
    assert not evidence.complete and len(evidence.runs) == 2 and evidence.failed == 1 and evidence.planned == 4
    assert ("2 of 4 runs finished; 1 failed, which a resumed sweep retries (the first: FloatingPointError: "
            "loss became nan at step 353; each run's log is in the folder's runs/)") in evidence.describe()


def test_describe_names_command_commit_environment_and_cost(tmp_path: Path) -> None:
    invocations = [_invocation("a" * 40, 3, 3600.0, "AVX2"), _invocation("b" * 40, 1, 1800.0, "AVX512"),
                   _invocation("c" * 40, 0, 1.0, "DEFAULT")]  # found every run done: ran nothing
    evidence = load_evidence(_folder(tmp_path, ["ok"] * 4, invocations))
    assert evidence is not None and evidence.complete and evidence.commits == ["a" * 40, "b" * 40]
    text = evidence.describe()
    assert text.startswith("Evidence run (complete): `python -m rnnpool_lite.repro.sweep notebooks/runs/x.ipynb")
    assert "at commit aaaaaaaaaa, bbbbbbbbbb" in text
    assert "torch 2.13.0, CPU capability AVX512, on cpu: x86_64, 2 cores" in text  # the last that ran
    assert "1.50 h wall, 2.00 h CPU over 3 invocation(s)" in text


def test_a_chapter_uses_only_complete_evidence_and_names_the_command(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "notebooks" / "runs").mkdir(parents=True)
    (tmp_path / "notebooks" / "runs" / "x.ipynb").write_text("{}")
    folder = tmp_path / "results" / "evidence" / "05_x"
    folder.mkdir(parents=True)
    notebook = tmp_path / "notebooks" / "runs" / "x.ipynb"
    command = ("python -m rnnpool_lite.repro.sweep notebooks/runs/x.ipynb --grid results/evidence/05_x/grid.yaml "
               "--out results/evidence/05_x --jobs 2")
    assert sweep_command(notebook, folder) == command  # relative to the checkout, whatever the cwd
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    assert f"--out {outside.resolve()} --jobs 4" in sweep_command(notebook, outside, jobs=4)

    evidence, text = chapter_evidence(_folder(folder, None), notebook)
    assert evidence is None and "has not been run" in text and f"`{command}`" in text
    evidence, text = chapter_evidence(_folder(folder, ["ok", "ok", "pending", "pending"],
                                              [_invocation("a" * 40, 2, 60.0, "AVX2")]), notebook)
    assert evidence is None and "not complete" in text and "2 of 4 runs finished" in text and "Resume" in text
    evidence, text = chapter_evidence(_folder(folder, ["ok"] * 4, [_invocation("a" * 40, 4, 60.0, "AVX2")]),
                                      notebook)
    assert evidence is not None and evidence.complete and text == evidence.describe()
    assert chapter_evidence(None, notebook)[0] is None
    evidence, text = chapter_evidence(tmp_path / "nowhere", notebook)
    assert evidence is None and "no evidence folder" in text
    with pytest.raises(FileNotFoundError, match="grid.yaml"):
        chapter_evidence(tmp_path / "notebooks", notebook)


@pytest.mark.slow
@pytest.mark.parametrize("folder", COMMITTED, ids=lambda folder: folder.name)
def test_committed_evidence_still_replays(folder: Path, kernel_sees_this_package: None) -> None:
    """The code still makes the first 5 steps of each committed evidence run (rnnpool_lite.repro.replay).
    On a machine that rounds differently (another torch build or CPU capability), training amplifies
    the rounding difference after the first step, so there the first step alone must match."""
    report = replay(folder)
    assert report.ok or (report.environment_differences and report.first_mismatch != 1), report.describe()
