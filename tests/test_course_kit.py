"""Every chapter and lab is ready to hand out: install cell, course scaffolding, page-wide code.

* The first cell (``scripts/install_cell.py`` holds its text) installs the package where it is
  missing (Colab), fetches the Debian data sets a notebook needs, and does nothing where the
  package is installed.
* Objectives and prerequisites open every chapter and lab; a summary and review questions close it.
* No code line is wider than the book's code column at a 1280 px window (the browser test checks
  the built pages too).
"""
from __future__ import annotations

import importlib.util
import json
import runpy
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
INSTALL = runpy.run_path(str(ROOT / "scripts" / "install_cell.py"))
NOTEBOOKS: list[Path] = INSTALL["notebooks"]()
#: chapters and labs; the summary page is back matter, not a lesson
LESSONS = [p for p in NOTEBOOKS if p.stem != "99_summary"]
IDS = [p.relative_to(ROOT).as_posix() for p in NOTEBOOKS]

#: characters of code that fit the book's code column at a 1280 px wide window (measured in Chromium
#: on a lab page: about 8.8 px per character in the 666 px column of a collapsed solution)
CODE_COLUMNS = 75


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_every_chapter_and_lab_is_covered() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert len([n for n in names if n.startswith("notebooks/")]) >= 11
    assert len([n for n in names if n.startswith("labs/")]) >= 4


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_install_cell_comes_first_hidden_and_current(notebook: Path) -> None:
    cell = _cells(notebook)[0]
    assert cell["cell_type"] == "code" and "remove-cell" in cell["metadata"].get("tags", [])
    assert not INSTALL["stale"](notebook), "run `python scripts/install_cell.py --write`"
    url, branch = INSTALL["repository"]()
    assert f'REPOSITORY, BRANCH = "{url}", "{branch}"' in _source(cell)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_install_cell_is_a_no_op_where_the_package_is_installed(notebook: Path) -> None:
    with mock.patch("subprocess.run") as run:
        exec(compile(_source(_cells(notebook)[0]), notebook.name, "exec"), {})
    run.assert_not_called()


def _run_where_missing(code: str, *, apt: bool, root: bool) -> list:
    real = importlib.util.find_spec
    missing = lambda name, *a: None if name == "rnnpool_lite" else real(name, *a)  # noqa: E731
    with mock.patch("importlib.util.find_spec", side_effect=missing), \
            mock.patch("subprocess.run") as run, \
            mock.patch("os.path.isdir", return_value=False), \
            mock.patch("shutil.which", return_value="/usr/bin/apt-get" if apt else None), \
            mock.patch("os.geteuid", return_value=0 if root else 1000):
        exec(compile(code, "install_cell", "exec"), {})
    return run.call_args_list


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_install_cell_installs_the_repository_where_the_package_is_missing(notebook: Path) -> None:
    calls = _run_where_missing(_source(_cells(notebook)[0]), apt=True, root=True)
    (args,), kwargs = calls[0]
    url, branch = INSTALL["repository"]()
    assert args[1:5] == ["-m", "pip", "install", "--quiet"]
    assert args[-1] == f"git+{url}@{branch}" and kwargs == {"check": True}


def test_install_cell_fetches_debian_data_sets_with_apt_and_says_how_without(capsys: pytest.CaptureFixture) -> None:
    code = INSTALL["render"](["dataset-fashion-mnist"])
    calls = _run_where_missing(code, apt=True, root=True)
    assert [c.args[0][:4] for c in calls[1:]] == [["apt-get", "install", "-y", "-q"]]
    assert calls[1].args[0][4:] == ["dataset-fashion-mnist"]
    calls = _run_where_missing(code, apt=False, root=False)
    assert len(calls) == 1  # pip only
    assert "dataset-fashion-mnist" in capsys.readouterr().out


def test_install_cell_refuses_an_unknown_data_set() -> None:
    with pytest.raises(ValueError, match="unknown Debian data sets"):
        INSTALL["render"](["dataset-imagenet"])


def test_install_cell_is_found_missing_and_written_first(tmp_path: Path) -> None:
    notebook = json.loads(NOTEBOOKS[0].read_text())
    notebook["cells"] = notebook["cells"][1:]
    copy = tmp_path / "chapter.ipynb"
    copy.write_text(json.dumps(notebook))
    assert INSTALL["stale"](copy)
    assert INSTALL["write"](copy) and not INSTALL["stale"](copy)
    cells = _cells(copy)
    assert len(cells) == len(notebook["cells"]) + 1 and cells[1:] == notebook["cells"]
    assert not INSTALL["write"](copy)  # idempotent


def test_install_cell_script_checks_the_repository() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "install_cell.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.relative_to(ROOT).as_posix() for p in LESSONS])
def test_has_objectives_prerequisites_summary_and_review_questions(lesson: Path) -> None:
    text = "\n".join(_source(c) for c in _cells(lesson) if c["cell_type"] == "markdown")
    for heading in ("**Learning objectives.**", "**Prerequisites.**", "## Summary", "## Review questions"):
        assert heading in text, f"{lesson.name} lacks {heading}"
    assert text.index("**Learning objectives.**") < text.index("## Summary") < text.index("## Review questions")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_no_code_line_is_wider_than_the_page(notebook: Path) -> None:
    wide = [line for cell in _cells(notebook) if cell["cell_type"] == "code"
            for line in _source(cell).splitlines() if len(line) > CODE_COLUMNS]
    assert not wide, f"{notebook.name}: lines over {CODE_COLUMNS} characters: {wide}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_glued_numbers_are_plain_python_numbers(notebook: Path) -> None:
    """A glued numpy scalar saves as ``np.float64(80.8)``: ``{glue:text}`key:.1f``` cannot format it
    and the book build warns (fails under -W). Glue ``float(x)``."""
    bad = [(output["metadata"]["scrapbook"]["name"], text)
           for cell in _cells(notebook) if cell["cell_type"] == "code"
           for output in cell.get("outputs", []) if "scrapbook" in output.get("metadata", {})
           for mime, text in output.get("data", {}).items()
           if mime.endswith("text/plain") and str(text).startswith("np.")]
    assert not bad, f"{notebook.name}: glued numpy scalars {bad}"


def _fenced_code(markdown: str) -> list[str]:
    """Lines of the fenced code blocks (```bash, ```c, ``` ...) in ``markdown``, parsed with
    markdown-it (myst-parser's parser); a MyST directive (```{exercise} ...) holds Markdown, which
    wraps, so its body is searched for code blocks in turn."""
    lines: list[str] = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type != "fence":
            continue
        if token.info.startswith("{"):
            lines += _fenced_code(token.content)
        else:
            lines += token.content.splitlines()
    return lines


PAGES = NOTEBOOKS + sorted((ROOT / "book").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_no_code_block_in_the_text_is_wider_than_the_page(page: Path) -> None:
    texts = ([_source(c) for c in _cells(page) if c["cell_type"] == "markdown"] if page.suffix == ".ipynb"
             else [page.read_text()])
    wide = [line for text in texts for line in _fenced_code(text) if len(line) > CODE_COLUMNS]
    assert not wide, f"{page.name}: code lines over {CODE_COLUMNS} characters: {wide}"
