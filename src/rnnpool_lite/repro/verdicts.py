"""The summary page's verdict table: one row per claim of the paper, from the chapters' records.

Each chapter records its paired comparisons with :meth:`ChapterResults.add_verdict`. The summary
page lists every record of this build's results files, in the order of :data:`EXPECTED_CLAIMS`,
and adds a "not run in this build" row, linked to the chapter that tests it, for every expected
claim no record answers. The table is written as MyST Markdown, so its links resolve in the book.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rnnpool_lite.repro.results import ChapterResults
from rnnpool_lite.stats import PairedComparison

NOT_RUN = "not run in this build"
COLUMNS = ["claim", "experiment", "paper", "ours", "verdict", "chapter", "link", "tier"]


@dataclass(frozen=True)
class ExpectedClaim:
    """A claim of the paper the summary must show, and how to recognise its verdict records.

    ``pattern`` is a regular expression searched (case-insensitively) in a record's claim text;
    a record counts for the first expected claim it matches. ``chapter`` is the results file
    (and notebook) name of the chapter that tests it, linked where no record exists.
    """

    claim: str
    chapter: str
    pattern: str


#: The claims the summary covers, in the order it shows them. The Table 2 downsamplers come
#: before the model-vs-base claim, whose pattern ("base") their records may also contain, and
#: name their table (Appendix C.2 also compares RNNPool with a strided convolution).
EXPECTED_CLAIMS: tuple[ExpectedClaim, ...] = (
    ExpectedClaim("RNNPool vs average pooling (Table 2)", "05_visual_wake_words",
                  r"(average|avg).*table 2"),
    ExpectedClaim("RNNPool vs max pooling (Table 2)", "05_visual_wake_words", r"max[ -]?pool.*table 2"),
    ExpectedClaim("RNNPool vs strided convolution (Table 2)", "05_visual_wake_words",
                  r"strided.*table 2"),
    ExpectedClaim("RNNPool vs ReNet (Table 2)", "05_visual_wake_words", r"renet.*table 2"),
    ExpectedClaim("RNNPool model as accurate as the base model (Tables 1-2)",
                  "05_visual_wake_words", r"equivalen|\bbase\b"),
    ExpectedClaim("Appendix C.2: pooling a whole image in one step", "03_training_probes",
                  r"C\.2|one[- ]shot"),
    ExpectedClaim("Table 7: orientation and shape, with a probe that learns",
                  "03_training_probes", r"table 7|orientation|shape"),
    ExpectedClaim("Table 18: FastGRNN vs GRU vs LSTM", "07_ablations",
                  r"table 18|fastgrnn|\bgru\b|lstm"),
    ExpectedClaim("Table 16: patch size and hidden size", "07_ablations",
                  r"table 16|patch|hidden"),
    ExpectedClaim("Figure 3: equal-accuracy RAM ratio", "10_ram_accuracy_tradeoffs",
                  r"equal[- ]accuracy|figure 3"),
    ExpectedClaim("RNNPool-Face vs the cascade detector", "04_face_detection", r"cascade"),
    ExpectedClaim("int8 vs float", "06_int8_cortex_m4", r"int8|quantiz"),
)


def chapter_label(chapter: str) -> str:
    """"chapter 5" for ``05_visual_wake_words``; the name itself where it has no number."""
    number = re.match(r"(\d+)_", chapter)
    return f"chapter {int(number.group(1))}" if number else chapter


def _link(chapter: str, section: str) -> str:
    label = chapter_label(chapter)
    if section:
        return f"{{ref}}`{label} <{section}>`"
    return f"[{label}]({chapter}.ipynb)"


def _ours(record: Mapping[str, Any]) -> str:
    mean, low, high = record["mean_difference"], record["ci_low"], record["ci_high"]
    if mean is None or low is None or high is None:
        return f"n={record['n']}, {record['tier']} tier"
    confidence = f"{100 * record['confidence']:.0f}% CI" if record.get("confidence") else "CI"
    # two decimals, as compare_paired's sentence in the chapter writes them
    return (f"{mean:+.2f} ({confidence} {low:+.2f} to {high:+.2f}), "
            f"{record['a']} - {record['b']}, n={record['n']}, {record['tier']} tier")


def _verdict(record: Mapping[str, Any]) -> str:
    text = str(record["verdict"])
    if record.get("reversed"):
        text += " (sign reversed)"
    # add_verdict requires resolve for every verdict that is not reproduced
    if record["verdict"] != "reproduced" and record.get("resolve"):
        text += f"; {record['resolve']}"
    return text


def _expected_index(claim: str, expected: Sequence[ExpectedClaim]) -> int | None:
    for i, item in enumerate(expected):
        if re.search(item.pattern, claim, flags=re.IGNORECASE):
            return i
    return None


def _evidence_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An expected claim's rows without the quick-tier ones of a chapter that also recorded the
    claim from its evidence run: the verdict rests on the evidence, and the quick run (a pipeline
    check at toy scale) stays on the chapter's page and in the summary's per-chapter rows."""
    with_evidence = {row["chapter"] for row in rows if row["tier"] == "evidence"}
    return [row for row in rows if row["tier"] == "evidence" or row["chapter"] not in with_evidence]


def verdict_table(runs: Mapping[str, ChapterResults],
                  expected: Sequence[ExpectedClaim] = EXPECTED_CLAIMS) -> pd.DataFrame:
    """One row per verdict record of ``runs`` (this build's results, by chapter), plus a
    "not run in this build" row for each expected claim that no record answers. Where a chapter
    recorded an expected claim from both tiers, only its evidence-tier rows are kept.

    Rows follow ``expected``; records that match no expected claim come last, by chapter.
    """
    placed: dict[int | None, list[dict[str, Any]]] = {}
    for chapter in sorted(runs):
        for record in runs[chapter].verdicts:
            row = {"claim": record["claim"], "experiment": record["experiment"],
                   "paper": record["paper"], "ours": _ours(record), "verdict": _verdict(record),
                   "chapter": chapter, "link": _link(chapter, record.get("section") or ""),
                   "tier": record["tier"]}
            placed.setdefault(_expected_index(record["claim"], expected), []).append(row)
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(expected):
        rows.extend(_evidence_first(placed.get(i, [])) or [{
            "claim": item.claim, "experiment": "", "paper": "", "ours": "", "verdict": NOT_RUN,
            "chapter": item.chapter, "link": _link(item.chapter, ""), "tier": ""}])
    rows.extend(placed.get(None, []))
    return pd.DataFrame(rows, columns=COLUMNS)


def against_paper(comparisons: Sequence[PairedComparison], *, paper: str, could: str, tier: str,
                  none: str = "No verdict of this run goes against the paper.") -> str:
    """A MyST warning admonition for a chapter's verdicts that go against the paper, stated as
    plainly as one that agrees: the paper's finding (``paper``), each contradicted comparison's
    sentence, and what would change them. At the evidence tier that is ``could`` (the scale, the
    data), since more seeds cannot move an interval that already excludes the paper's figure; at
    the quick tier, the evidence run. Where none is contradicted it returns ``none`` (one
    sentence that says so; ``""`` where the flag sits under each verdict and silence reads better).
    """
    against = [c for c in comparisons if c.verdict == "contradicted"]
    if not against:
        return none
    title = "This reverses the paper" if any(c.reversed for c in against) else "This goes against the paper"
    if tier == "evidence":
        seeds = "/".join(str(n) for n in sorted({c.n for c in against}))
        change = (f"More seeds would not change it: over {seeds} paired seeds the interval already excludes "
                  f"what the paper reports. What could: {could}")
    else:
        change = "This is the quick run, a check of the pipeline; the evidence run decides it."
    lines = " ".join(c.sentence for c in against)
    return f"```{{admonition}} {title}\n:class: warning\n{paper} Here: {lines} {change}\n```"


def what_would_change(comparison: PairedComparison, *, tier: str, could: str, decides: bool = True,
                      evidence: str = "the evidence run decides it") -> str:
    """What would decide a verdict that is not reproduced, or change one against the paper: the
    ``resolve`` text of :meth:`ChapterResults.add_verdict`, which the summary's table shows.

    - reproduced: ``""``, nothing to settle;
    - a run whose task cannot decide (``decides=False``, :meth:`TaskCheck.qualify` made its
      verdicts inconclusive): at the quick tier ``evidence``, at the evidence tier a task the
      models learn;
    - inconclusive: about ``seeds_needed`` seeds at the measured spread;
    - contradicted: at the quick tier ``evidence`` (a pipeline check decides nothing); at the
      evidence tier ``could`` (the paper's scale, data or task), and not more seeds: the interval
      already excludes the paper's figure, and more seeds only narrow it.
    """
    if tier not in ("quick", "evidence"):
        raise ValueError(f"tier must be 'quick' or 'evidence', got {tier!r}")
    if comparison.verdict == "reproduced":
        return ""
    if not decides:
        return evidence if tier == "quick" else "a task the models learn, far from chance and from 100%"
    if comparison.verdict == "inconclusive":
        return f"about {comparison.seeds_needed or 'more'} seeds at this spread"
    if tier == "quick":
        return evidence
    return f"{could}; not more seeds: the interval already excludes the paper's figure"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """``frame`` as a Markdown pipe table (cells' ``|`` escaped, line breaks made spaces)."""
    columns = list(columns or frame.columns)

    def cell(value: Any) -> str:
        return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines)
