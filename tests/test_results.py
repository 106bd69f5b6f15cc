"""results: claims name themselves, orderings need separated seeds, files round-trip and compare."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnpool_lite.repro import results
from rnnpool_lite.repro.results import ChapterResults, ClaimFailed, claim, compare, ordering, seed_stats, seed_summary


def test_claim_names_statement_and_values() -> None:
    claim(True, "always fine")
    with pytest.raises(ClaimFailed, match=r"claim failed: RNNPool beats the cascade \(measured: ap=0.5, cascade=0.7\)"):
        claim(False, "RNNPool beats the cascade", ap=0.5, cascade=0.7)
    with pytest.raises(TypeError):
        claim(True, "")


def test_ordering_needs_separation() -> None:
    clear = ordering("A", [0.90, 0.91, 0.92], "B", [0.80, 0.81, 0.79])
    assert clear.holds and not clear.reversed and "A beats B" in clear.sentence
    noisy = ordering("A", [0.90, 0.80, 0.85], "B", [0.84, 0.86, 0.82])
    assert not noisy.holds and not noisy.reversed and "within seed noise" in noisy.sentence
    lower = ordering("A", [10, 11, 10.5], "B", [20, 21, 19], metric="RAM", higher_is_better=False)
    assert lower.holds


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8))
def test_seed_stats_bounds(values: list[float]) -> None:
    s = seed_stats(values)
    assert s.low <= s.mean + 1e-6 * max(1, abs(s.mean)) and s.mean <= s.high + 1e-6 * max(1, abs(s.mean))
    assert s.spread >= 0 and s.n == len(values)
    assert (s.spread == 0) if len(values) == 1 else True


def test_seed_summary_and_missing_column() -> None:
    runs = pd.DataFrame({"model": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "acc": [1.0, 3.0, 2.0, 2.0]})
    table = seed_summary(runs, "model", "acc")
    assert table.loc["a", ("acc", "mean")] == 2.0 and table.loc["b", ("acc", "spread")] == 0.0
    with pytest.raises(KeyError, match="nope"):
        seed_summary(runs, "model", "nope")


def test_save_load_compare(tmp_path, capsys) -> None:
    a = ChapterResults("05_vww", parameters={"epochs": 2}, seeds=[0, 1, 2])
    a.add("accuracy", paper=90.2, ours=88.0, unit="%", spread=1.5)
    a.add("RAM ratio", paper=8.0, ours=6.7)
    with pytest.raises(ValueError, match="twice"):
        a.add("accuracy", paper=1, ours=1)
    pa = a.save(tmp_path / "a")
    assert json.loads(pa.read_text())["environment"]["torch"]
    b = ChapterResults.load(pa)
    b.rows[0]["ours"] = 82.5
    # another machine's SIMD path (this one may itself run as DEFAULT, under ATEN_CPU_CAPABILITY=default)
    b.environment["cpu_capability"] = "AVX2" if a.environment["cpu_capability"] != "AVX2" else "DEFAULT"
    b.save(tmp_path / "b")
    diff = compare(tmp_path / "a", tmp_path / "b")
    assert set(diff["quantity"]) == {"accuracy", "environment:cpu_capability"}
    assert compare(pa, pa).empty
    assert compare(tmp_path / "a", tmp_path / "b", rtol=0.1)["quantity"].tolist() == ["environment:cpu_capability"]
    assert results.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "82.5" in capsys.readouterr().out
    assert results.main(["compare", str(tmp_path / "nothing"), str(pa)]) == 2
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="not a chapter results file"):
        ChapterResults.load(tmp_path / "bad.json")


def _sweep_folder(path, commit: str, capability: str, rows: list[dict]) -> None:
    """A sweep's folder as ``sweep`` writes it (results.csv, provenance.json), written by hand."""
    path.mkdir()
    table = pd.DataFrame([{**row, "error": None, "duration_s": 10 * len(commit), "cpu_s": 9.0, "skipped": False,
                           "notebook": f"{path}/runs/x.ipynb"} for row in rows])
    table.to_csv(path / "results.csv", index=False)
    invocation = {"command": "python -m rnnpool_lite.repro.sweep ...", "commit": commit, "dirty": False,
                  "grid": {"model": ["rnnpool", "base"], "seed": [0, 1]}, "device": "cpu: x86_64, 2 cores",
                  "environment": {"torch": "2.13.0", "cpu_capability": capability}, "runs_executed": len(rows)}
    (path / "provenance.json").write_text(json.dumps({"invocations": [invocation]}))


def test_compare_sweep_folders_run_by_run(tmp_path, capsys) -> None:
    """A reader reruns an evidence grid into their own folder and compares it with the committed one."""
    ok = dict(status="ok")
    _sweep_folder(tmp_path / "a", "aaa", "AVX512", [
        dict(model="rnnpool", seed=0, accuracy=0.8, curve="[0.5, 0.8]", **ok),
        dict(model="rnnpool", seed=1, accuracy=0.7, curve="[0.5, 0.7]", **ok),
        dict(model="base", seed=0, accuracy=0.9, curve="[0.6, 0.9]", **ok)])
    _sweep_folder(tmp_path / "b", "bbbb", "DEFAULT", [
        dict(model="rnnpool", seed=1, accuracy=0.75, curve="[0.5, 0.75]", **ok),  # another order: matched
        dict(model="rnnpool", seed=0, accuracy=0.8, curve="[0.5, 0.8]", **ok),
        dict(model="base", seed=0, accuracy=None, curve=None, status="failed"),
        dict(model="base", seed=1, accuracy=0.85, curve="[0.6, 0.85]", **ok)])
    diff = compare(tmp_path / "a", tmp_path / "b")
    rows = {(r.run, r.quantity): r for r in diff.itertuples()}
    assert list(rows) == [("model=rnnpool, seed=1", "accuracy"), ("model=rnnpool, seed=1", "curve"),
                          ("model=base, seed=0", "(run)"), ("model=base, seed=1", "(run)"),
                          ("(provenance)", "commit"), ("(provenance)", "environment:cpu_capability")]
    accuracy = rows["model=rnnpool, seed=1", "accuracy"]
    assert (accuracy.a, accuracy.b) == (0.7, 0.75) and accuracy.difference == pytest.approx(0.05)
    assert rows["model=rnnpool, seed=1", "curve"].difference == pytest.approx([0.0, 0.05])
    assert (rows["model=base, seed=0", "(run)"].a, rows["model=base, seed=0", "(run)"].b) == (True, False)
    assert rows["(provenance)", "commit"].b == "bbbb"
    assert compare(tmp_path / "a", tmp_path / "a").empty  # timings are not compared
    within = compare(tmp_path / "a", tmp_path / "b", rtol=0.1)
    assert not within["quantity"].isin(["accuracy", "curve"]).any()
    assert results.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "model=rnnpool, seed=1" in printed and "cpu_capability" in printed


def test_plain_value_makes_numpy_and_torch_json_friendly() -> None:
    import numpy as np
    import torch

    from rnnpool_lite.repro.results import plain_value

    assert plain_value(np.float32(0.5)) == 0.5 and type(plain_value(np.int64(3))) is int
    assert plain_value(np.arange(3)) == [0, 1, 2] and plain_value(torch.tensor([1.5, 2.0])) == [1.5, 2.0]
    assert plain_value(torch.tensor(2.5)) == 2.5 and plain_value("x") == "x"
    assert plain_value(float("nan")) is None and plain_value(np.float64("nan")) is None
    json.dumps([plain_value(v) for v in (np.float16(1), torch.tensor(3), np.bool_(True))])


def test_verdicts_round_trip_with_the_comparison_that_decided_them(tmp_path) -> None:
    from rnnpool_lite.repro.results import ChapterResults
    from rnnpool_lite.stats import compare_paired

    run = ChapterResults("05_visual_wake_words", seeds=[0, 1, 2, 3])
    comparison = compare_paired([80.0, 81.0, 79.5, 80.5], [70.0, 72.0, 69.0, 71.0], claim="greater",
                                paper_gap=1.0, labels=("RNNPool", "base"), metric="accuracy")
    run.add_verdict("RNNPool beats base", comparison, experiment="MobileNetV2, 4 seeds",
                    paper="+1.0 points (Table 2)", section="sec-vww", resolve="")
    with pytest.raises(ValueError, match="added twice"):
        run.add_verdict("RNNPool beats base", comparison, experiment="x", paper="y")
    against = compare_paired([70.0, 71.0, 69.5, 70.5], [80.0, 82.0, 79.0, 81.0], claim="greater", paper_gap=1.0)
    assert against.verdict == "contradicted"
    with pytest.raises(ValueError, match="is contradicted: pass resolve="):
        run.add_verdict("base beats RNNPool", against, experiment="x", paper="y", resolve=" ")
    loaded = ChapterResults.load(run.save(tmp_path))
    (record,) = loaded.verdicts
    assert record["verdict"] == comparison.verdict == "reproduced"
    assert record["ci_low"] == pytest.approx(comparison.ci_low) and record["n"] == 4
    assert record["differences"] == [10.0, 9.0, 10.5, 9.5] and record["a"] == "RNNPool"
    frame = loaded.verdict_frame()
    assert list(frame["claim"]) == ["RNNPool beats base"] and frame.loc[0, "tier"] == "quick"


def test_results_record_the_commit_and_only_this_builds_files_count(tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    from rnnpool_lite.repro.results import git_commit, split_by_build

    head = git_commit(results.__file__.rsplit("/", 1)[0])
    assert head is None or len(head) == 40
    assert git_commit(tmp_path) is None  # not a repository
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    at = lambda minutes: (start + timedelta(minutes=minutes)).isoformat(timespec="seconds")  # noqa: E731
    runs = {"a": ChapterResults("a", created=at(5), commit="c1"),
            "b": ChapterResults("b", created=at(-5), commit="c1"),      # an earlier run
            "c": ChapterResults("c", created=at(5), commit="c0"),       # another commit
            "d": ChapterResults("d", created=at(5), commit=None)}       # written before commits were kept
    fresh, stale = split_by_build(runs, "c1", start)
    assert list(fresh) == ["a"] and sorted(stale) == ["b", "c", "d"]
    assert "before this build" in stale["b"] and "commit c0" in stale["c"]
    fresh, stale = split_by_build(runs, None, start)  # outside a checkout: by time, among files without one
    assert list(fresh) == ["d"] and sorted(stale) == ["a", "b", "c"]
    loaded = ChapterResults.load(runs["a"].save(tmp_path))
    assert loaded.commit == "c1"


def test_git_dirty_can_leave_out_the_sweeps_own_folder(tmp_path) -> None:
    """A resumed sweep rewrites its committed results: that is not uncommitted code."""
    import subprocess

    from rnnpool_lite.repro.results import git_dirty, repository_root

    repo = tmp_path / "repo"
    (repo / "code").mkdir(parents=True)
    (repo / "out").mkdir()
    (repo / "code" / "x.py").write_text("x = 1\n")
    (repo / "out" / "results.csv").write_text("a\n1\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "evidence"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    assert git_dirty(repo / "code") is False
    (repo / "out" / "results.csv").write_text("a\n2\n")
    assert git_dirty(repo / "code") is True
    assert git_dirty(repo / "code", exclude=[repo / "out"]) is False
    assert git_dirty(repo / "code", exclude=[tmp_path / "elsewhere"]) is True  # outside the checkout: ignored
    (repo / "code" / "x.py").write_text("x = 2\n")
    assert git_dirty(repo / "code", exclude=[repo / "out"]) is True
    assert git_dirty(tmp_path) is None
    assert repository_root(repo / "code" / "x.py") == repo and repository_root(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("")  # an unpacked archive: no .git, a pyproject.toml
    assert repository_root(tmp_path / "elsewhere") == tmp_path


def test_display_value_keeps_small_numbers_visible() -> None:
    from rnnpool_lite.repro.results import display_value

    assert display_value(2.113245263224428e-07) == "2.113e-07"
    assert display_value(15.158) == "15.16" and display_value(640) == 640
    assert display_value(None) == "" and display_value("8, 8") == "8, 8"
