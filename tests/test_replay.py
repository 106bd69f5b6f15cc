"""replay: a swept tiny run notebook replays its first steps; a tampered record or a changed model does not."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import rnnpool_lite
from rnnpool_lite.op.compiled import KERNEL_ENV
from rnnpool_lite.repro.replay import FIRST_LOSSES, RTOL, ReplayReport, main, replay
from rnnpool_lite.repro.sweep import load_grid, run_key, sweep

pytestmark = pytest.mark.slow  # two swept runs and three replays, each a kernel: about 90 s on 2 cores

TINY_RUN = Path(__file__).parent / "data" / "tiny_run.ipynb"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository with the tiny run notebook, swept at its commit over two runs (seeds [1] and [0])."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "pyproject.toml").write_text("")
    (repo / "runs").mkdir()
    shutil.copy(TINY_RUN, repo / "runs" / "tiny_run.ipynb")
    folder = repo / "results" / "evidence" / "tiny"
    folder.mkdir(parents=True)
    (folder / "grid.yaml").write_text("seeds: [[1], [0]]\nepochs: 2\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "tiny evidence")
    src = str(Path(rnnpool_lite.__file__).resolve().parents[1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        table = sweep(repo / "runs" / "tiny_run.ipynb", load_grid(folder / "grid.yaml"), folder)
        assert table["status"].tolist() == ["ok", "ok"], table["error"].tolist()
        yield folder


def _copy(evidence: Path, tmp_path: Path) -> Path:
    """The evidence repository, copied so that a test can change it."""
    repo = tmp_path / "repo"
    shutil.copytree(evidence.parents[2], repo)
    return repo / "results" / "evidence" / "tiny"


def _edit_parameters(folder: Path, old: str, new: str) -> Path:
    """Replace ``old`` by ``new`` in the parameters cell of the copied repository's run notebook."""
    notebook = folder.parents[2] / "runs" / "tiny_run.ipynb"
    nb = nbformat.read(str(notebook), as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace(old, new)
    nbformat.write(nb, str(notebook))
    return notebook


def test_replay_of_unchanged_code_matches(evidence: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(evidence)]) == 0
    printed = capsys.readouterr().out
    assert f"runs/{run_key({'seeds': [0], 'epochs': 2})}" in printed and "matches" in printed
    report = replay(evidence, steps=3)
    assert report.parameters == {"seeds": [0], "epochs": 2, "max_steps": 3}  # the smallest first seed
    assert len(report.recorded) == len(report.replayed) == 3
    assert report.ok and report.max_relative_difference <= RTOL
    assert report.evidence_commit is not None and report.evidence_commit == report.commit_now
    assert report.first_mismatch is None and report.environment_differences == {}


def test_tampered_record_fails(evidence: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _copy(evidence, tmp_path)
    path = folder / "runs" / f"{run_key({'seeds': [0], 'epochs': 2})}.json"
    saved = json.loads(path.read_text())
    saved["records"][FIRST_LOSSES][2] *= 1 + 10 * RTOL
    path.write_text(json.dumps(saved))
    assert main([str(folder)]) == 1
    printed = capsys.readouterr()
    assert "no longer matches the code: step 3's training loss differs" in printed.err
    assert "DOES NOT MATCH from step 3" in printed.out


def test_changed_model_fails(evidence: Path, tmp_path: Path) -> None:
    """One more conv channel in the notebook (a code change after the evidence was made)."""
    folder = _copy(evidence, tmp_path)
    _edit_parameters(folder, "width = 4", "width = 5")
    report = replay(folder)
    assert not report.ok and report.first_mismatch == 1 and report.max_relative_difference > 100 * RTOL


def test_folder_without_first_losses_or_max_steps_is_refused(evidence: Path, tmp_path: Path) -> None:
    folder = _copy(evidence, tmp_path)
    notebook = _edit_parameters(folder, "max_steps = None", "steps = None")
    with pytest.raises(ValueError, match="no papermill parameter max_steps"):
        replay(folder)
    shutil.copy(TINY_RUN, notebook)
    for path in (folder / "runs").glob("*.json"):
        saved = json.loads(path.read_text())
        del saved["records"][FIRST_LOSSES]
        path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="no finished run .* recorded 'first_losses'"):
        replay(folder)
    with pytest.raises(FileNotFoundError, match="not a sweep's folder"):
        replay(tmp_path)


def test_evidence_from_before_the_kernel_was_recorded_counts_as_the_torch_path() -> None:
    def report(then: dict, now: dict) -> ReplayReport:
        return ReplayReport(Path("f"), "r", {}, [1.0], [1.0], RTOL, "a", "a", then, now)

    base = {"torch": "2.13.0", "cpu_capability": "AVX512"}
    assert report(base, base | {"rnnpool_kernel": "torch"}).environment_differences == {}
    assert report(base, base | {"rnnpool_kernel": "compiled"}).environment_differences == {
        "rnnpool_kernel": ("torch", "compiled")}


def _recorded_kernel(evidence: Path) -> str:
    kernels = {json.loads(p.read_text())["environment"]["rnnpool_kernel"] for p in (evidence / "runs").glob("*.json")}
    assert len(kernels) == 1
    return kernels.pop()


def test_replay_runs_on_the_kernel_the_run_recorded(evidence: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = _recorded_kernel(evidence)  # the fixture's sweep ran on this machine's default
    other = "torch" if recorded == "compiled" else "compiled"
    monkeypatch.setenv(KERNEL_ENV, other)  # what this session asks for does not reach the replay
    report = replay(evidence, steps=3)
    assert report.ok and report.environment_now["rnnpool_kernel"] == recorded, report.describe()
    assert os.environ[KERNEL_ENV] == other  # and is put back


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="needs a C++ compiler: Debian's g++ (bash scripts/system_packages.sh)")
def test_replay_on_the_other_kernel_names_it_and_keeps_the_first_step(evidence: Path) -> None:
    recorded = _recorded_kernel(evidence)
    other = "torch" if recorded == "compiled" else "compiled"
    report = replay(evidence, steps=3, rnnpool_kernel=other)
    assert report.environment_differences == {"rnnpool_kernel": (recorded, other)}, report.describe()
    assert report.first_mismatch != 1, report.describe()  # same data, model and loss: step 1 within 1e-4
