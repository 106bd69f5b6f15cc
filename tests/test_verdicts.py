"""The summary page's verdict table, built from constructed verdict records."""
from __future__ import annotations

import pytest

from rnnpool_lite.repro.results import ChapterResults
from rnnpool_lite.repro.verdicts import (
    EXPECTED_CLAIMS,
    NOT_RUN,
    ExpectedClaim,
    against_paper,
    chapter_label,
    markdown_table,
    verdict_table,
    what_would_change,
)
from rnnpool_lite.stats import compare_paired


def _run(chapter: str, *claims: tuple[str, list[float], list[float]]) -> ChapterResults:
    run = ChapterResults(chapter, seeds=[0, 1, 2, 3])
    for text, a, b in claims:
        comparison = compare_paired(a, b, claim="greater", paper_gap=1.0, labels=("RNNPool", "other"))
        run.add_verdict(text, comparison, experiment="4 seeds", paper="+1 point",
                        section="sec-x" if "avg" in text else "",
                        resolve="" if comparison.verdict == "reproduced" else "the paper's scale")
    return run


def test_every_expected_claim_has_a_row_and_records_fill_theirs() -> None:
    runs = {"05_visual_wake_words": _run(
        "05_visual_wake_words",
        ("RNNPool vs avg pooling (Table 2)", [80.0, 81.0, 79.5, 80.5], [70.0, 72.0, 69.0, 71.0]),
        ("RNNPool vs ReNet (Table 2)", [80.0, 81.0, 79.5, 80.5], [82.0, 83.5, 81.0, 82.5])),
        "11_new_chapter": _run("11_new_chapter", ("something else", [1.0, 2, 3, 4], [0.0, 1, 2, 4]))}
    table = verdict_table(runs)
    assert len(table) == len(EXPECTED_CLAIMS) + 1  # two records fill two rows, one comes last
    avg = table[table["claim"] == "RNNPool vs avg pooling (Table 2)"].iloc[0]
    assert avg["verdict"] == "reproduced" and avg["link"] == "{ref}`chapter 5 <sec-x>`"
    assert avg["ours"].startswith("+9.75 (95% CI") and "n=4, quick tier" in avg["ours"]
    renet = table[table["claim"] == "RNNPool vs ReNet (Table 2)"].iloc[0]
    assert renet["verdict"] == "contradicted (sign reversed); the paper's scale"
    assert table.index[table["claim"] == "RNNPool vs ReNet (Table 2)"][0] == 3  # the ReNet row's place
    assert table.iloc[-1]["claim"] == "something else" and table.iloc[-1]["chapter"] == "11_new_chapter"
    missing = table[table["verdict"] == NOT_RUN]
    assert len(missing) == len(EXPECTED_CLAIMS) - 2
    face = missing[missing["chapter"] == "04_face_detection"].iloc[0]
    assert face["link"] == "[chapter 4](04_face_detection.ipynb)"


def test_no_records_gives_one_not_run_row_per_expected_claim() -> None:
    expected = [ExpectedClaim("a claim", "02_x", "a")]
    table = verdict_table({}, expected)
    assert table[["claim", "verdict", "link"]].values.tolist() == [
        ["a claim", NOT_RUN, "[chapter 2](02_x.ipynb)"]]


def test_an_inconclusive_record_says_what_would_decide_it() -> None:
    run = ChapterResults("10_x", seeds=[0, 1, 2])
    comparison = compare_paired([80.0, 75.0, 82.0], [79.0, 78.0, 80.0], claim="equivalent", margin=1.0)
    run.add_verdict("Figure 3's equal-accuracy RAM ratio", comparison, experiment="e", paper="8x",
                    resolve="more seeds")
    row = verdict_table({"10_x": run}).set_index("claim").loc["Figure 3's equal-accuracy RAM ratio"]
    assert row["verdict"] == "inconclusive; more seeds"


def test_markdown_table_escapes_pipes_and_labels_chapters() -> None:
    table = verdict_table({}, [ExpectedClaim("a | b", "07_y", "z")])
    text = markdown_table(table, ["claim", "verdict"])
    assert text.splitlines() == ["| claim | verdict |", "| --- | --- |", f"| a \\| b | {NOT_RUN} |"]
    assert chapter_label("99_summary") == "chapter 99" and chapter_label("intro") == "intro"


def test_appendix_c2_strided_conv_record_is_not_taken_for_table_2() -> None:
    text = "RNNPool pools a whole 32x32 image in one go better than a strided convolution (Appendix C.2)"
    runs = {"03_training_probes": _run("03_training_probes", (text, [1.0, 2, 3, 4], [0.0, 1, 2, 4]))}
    table = verdict_table(runs)
    row = table.index[table["claim"] == text][0]
    strided = table[table["claim"] == "RNNPool vs strided convolution (Table 2)"]
    assert strided.iloc[0]["verdict"] == NOT_RUN
    c2 = next(i for i, e in enumerate(EXPECTED_CLAIMS) if "C.2" in e.claim)
    assert row == c2


def test_a_chapters_evidence_row_replaces_its_quick_row_of_the_same_claim() -> None:
    run = ChapterResults("03_training_probes", seeds=[0, 1, 2, 3])
    for tier in ("quick", "evidence"):
        comparison = compare_paired([1.0, 2, 3, 4], [0.0, 1, 2, 4], claim="greater", paper_gap=1.0)
        run.add_verdict(f"Appendix C.2, strided conv ({tier})", comparison, experiment=tier, paper="+17",
                        tier=tier, resolve="more seeds")
    other = ChapterResults("11_other", seeds=[0, 1, 2, 3])
    other.add_verdict("Appendix C.2 elsewhere", compare_paired([1.0, 2, 3, 4], [0.0, 1, 2, 4],
                      claim="greater", paper_gap=1.0), experiment="quick", paper="+17", resolve="more seeds")
    table = verdict_table({"03_training_probes": run, "11_other": other})
    c2 = table[table["claim"].str.contains("C.2")]
    # chapter 3's quick row goes; another chapter's quick row of the same claim stays
    assert c2[["chapter", "tier"]].values.tolist() == [["03_training_probes", "evidence"], ["11_other", "quick"]]
    # a chapter with only a quick row keeps it
    assert verdict_table({"11_other": other})["tier"].tolist().count("quick") == 1


def test_against_paper_flags_contradicted_verdicts_with_what_would_change_them() -> None:
    worse = compare_paired([70.0, 71, 69, 70.5], [75.0, 76, 75.5, 76], claim="equivalent", margin=1.0,
                           labels=("RNNPool", "base"))
    agrees = compare_paired([75.0, 76, 75.5, 76], [70.0, 71, 69, 70.5], claim="greater", paper_gap=2.0)
    reversed_ = compare_paired([70.0, 71, 69, 70.5], [75.0, 76, 75.5, 76], claim="greater", paper_gap=2.0)
    assert worse.verdict == "contradicted" and not worse.reversed
    text = against_paper([worse, agrees], paper="Table 2: within a point.", could="the paper's scale.",
                         tier="evidence")
    assert text.startswith("```{admonition} This goes against the paper\n:class: warning\n")
    assert worse.sentence in text and agrees.sentence not in text
    assert "over 4 paired seeds" in text and text.rstrip().endswith("the paper's scale.\n```")
    assert "This reverses the paper" in against_paper([reversed_], paper="p", could="c", tier="evidence")
    quick = against_paper([worse], paper="p", could="c", tier="quick")
    assert "the evidence run decides it" in quick and "c\n" not in quick
    assert against_paper([agrees], paper="p", could="c", tier="evidence") == (
        "No verdict of this run goes against the paper.")
    assert against_paper([agrees], paper="p", could="c", tier="quick", none="") == ""


def test_what_would_change_names_seeds_scale_or_the_evidence_run() -> None:
    agrees = compare_paired([75.0, 76, 75.5, 76], [70.0, 71, 69, 70.5], claim="greater", paper_gap=2.0)
    against = compare_paired([70.0, 71, 69, 70.5], [75.0, 76, 75.5, 76], claim="greater", paper_gap=2.0)
    undecided = compare_paired([70.0, 74, 69, 72.5], [70.5, 71, 71.5, 70], claim="greater", paper_gap=2.0)
    assert (agrees.verdict, against.verdict, undecided.verdict) == ("reproduced", "contradicted", "inconclusive")
    could = "ImageNet at 224 px"
    for tier in ("quick", "evidence"):
        assert what_would_change(agrees, tier=tier, could=could) == ""
        assert what_would_change(undecided, tier=tier, could=could) == (
            f"about {undecided.seeds_needed} seeds at this spread")
    assert what_would_change(against, tier="quick", could=could, evidence="run the sweep") == "run the sweep"
    assert what_would_change(against, tier="evidence", could=could) == (
        "ImageNet at 224 px; not more seeds: the interval already excludes the paper's figure")
    # a task that cannot decide decides nothing, whatever the interval
    assert what_would_change(against, tier="quick", could=could, decides=False) == "the evidence run decides it"
    assert what_would_change(undecided, tier="evidence", could=could, decides=False).startswith(
        "a task the models learn")
    with pytest.raises(ValueError, match="tier must be"):
        what_would_change(against, tier="full", could=could)
