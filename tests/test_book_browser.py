"""The published book, as a reader's browser sees it.

Builds the book from the committed notebook outputs (execution off, so it takes seconds, not the
hour of a full build) with warnings as errors (``-W -n``), serves it on localhost, and opens every
page in Chromium through Playwright. A page passes when it raises no JavaScript error, logs no
console error, requests nothing outside localhost (the HTML must work offline: MathJax ships in
``_static``), shows every image, has every formula typeset by MathJax (no raw ``\\(`` left in
the text) and links only to pages and anchors that exist, and no code (a cell's input, folded or
not, or a code block of the text) is wider than its column at a 1280 px window, where the reader
would have to scroll it sideways. Every page of ``_toc.yml`` (chapters, labs, back matter) must be
built. The search page must find "RNNPool".
Exercise solutions must be folded dropdowns. A screenshot of every page goes to
``_build/screenshots/`` for a human look.

Chromium comes from the system (Debian's ``chromium`` package, ``/usr/bin/chromium``):
``playwright install`` downloads browsers from the network, which this project does not rely on.
Where neither Chromium nor Playwright is there, the tests skip and say what to install.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _chromium() -> str | None:
    explicit = os.environ.get("RNNPOOL_LITE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


CHROMIUM = _chromium()
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found at /usr/bin/chromium: install it with `apt-get install -y chromium` "
           "(or set RNNPOOL_LITE_CHROMIUM to a Chromium binary) to run the browser tests",
)

# Text that must not survive MathJax: the delimiters Sphinx writes around math.
RAW_MATH = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")

PAGE_SCRIPT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(resolve => { img.onload = img.onerror = resolve; })));
  const skip = el => el.closest('pre, code, script, style, mjx-container, .highlight, .MathJax');
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node && node.parentElement && !skip(node.parentElement)) texts.push(node.textContent);
  }
  return {
    images: Array.from(document.images).map(img => ({src: img.currentSrc || img.src,
        width: img.naturalWidth, height: img.naturalHeight})),
    math: Array.from(document.querySelectorAll('.math')).map(el => ({
        typeset: el.querySelector('mjx-container') !== null, text: el.textContent.slice(0, 80)})),
    text: texts.join(' '),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    ids: Array.from(document.querySelectorAll('[id]')).map(el => el.id),
    exercises: document.querySelectorAll('.exercise').length,
    solutions: Array.from(document.querySelectorAll('.solution')).map(el => ({
        id: el.id, button: el.querySelector('.toggle-button') !== null,
        hidden: el.classList.contains('toggle-hidden')})),
  };
}
"""


# Code that scrolls sideways: every <pre> of a highlighted block that is not a cell's output, with
# folded cells (MyST-NB's hide-input <details>) opened for the measurement and closed again.
WIDE_CODE_SCRIPT = r"""
() => {
  const closed = Array.from(document.querySelectorAll('details:not([open])'));
  closed.forEach(d => { d.open = true; });
  const wide = Array.from(document.querySelectorAll('div.highlight pre'))
    .filter(pre => !pre.closest('.cell_output, .output'))
    .filter(pre => pre.scrollWidth > pre.clientWidth)
    .map(pre => {
      const lines = pre.textContent.split('\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      return `${pre.scrollWidth} > ${pre.clientWidth} px: ${longest.slice(0, 100)}`;
    });
  closed.forEach(d => { d.open = false; });
  return wide;
}
"""


def _toc_pages() -> list[str]:
    """The HTML page of every file in ``_toc.yml`` (root, chapters, labs and back matter)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [f"{Path(f).with_suffix('').as_posix()}.html" for f in files]


def _book_config(tmp: Path) -> Path:
    """_config.yml with execution off and local extension paths made absolute (the file moves)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    local = (config.get("sphinx") or {}).get("local_extensions") or {}
    for name, path in list(local.items()):
        local[name] = str((ROOT / path).resolve())
    path = tmp / "_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """A fresh HTML build of the book from the saved outputs, with warnings as errors."""
    tmp = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        pytest.fail("jupyter-book is not installed in this environment: pip install -e '.[test]'")
    cmd = [str(jupyter_book), "build", "--all", "-W", "-n", "--keep-going",
           "--config", str(_book_config(tmp)), "--path-output", str(tmp), str(ROOT)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log = run.stdout + run.stderr
    warnings = [line for line in log.splitlines() if re.search(r"WARNING|ERROR", line)]
    assert run.returncode == 0 and not warnings, (
        "the book build has warnings or failed (-W -n):\n" + "\n".join(warnings or log.splitlines()[-30:]))
    return tmp / "_build" / "html"


@pytest.fixture(scope="module")
def server(book):
    handler = functools.partial(_QuietHandler, directory=str(book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - keep pytest's output clean
        pass


def _pages(book: Path) -> list[str]:
    skip = ("_static", "_sources", "_images")
    return sorted(p.relative_to(book).as_posix() for p in book.rglob("*.html")
                  if p.relative_to(book).parts[0] not in skip and p.name != "index.html")


@pytest.fixture(scope="module")
def crawl(book, server):
    """Visit every page once; return what each page showed, logged and requested."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    results = {}
    start = time.perf_counter()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for page_path in _pages(book):
            page = context.new_page()
            seen = {"console": [], "page_errors": [], "failed": [], "external": []}
            page.on("console", lambda m, s=seen: m.type == "error" and s["console"].append(m.text))
            page.on("pageerror", lambda e, s=seen: s["page_errors"].append(str(e)))
            page.on("requestfailed", lambda r, s=seen: s["failed"].append(f"{r.url} ({r.failure})"))

            def route(r, s=seen):
                if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
                    r.continue_()
                else:
                    s["external"].append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(server + page_path, wait_until="load")
            info = page.evaluate(PAGE_SCRIPT)
            info["wide_code"] = page.evaluate(WIDE_CODE_SCRIPT)
            page.wait_for_timeout(100)  # late errors of deferred scripts
            shot = SCREENSHOTS / (page_path.replace("/", "__").removesuffix(".html") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            results[page_path] = {**info, **seen, "screenshot": shot}
            page.close()
        search = context.new_page()
        search.goto(server + "search.html?q=RNNPool", wait_until="load")
        with contextlib.suppress(sync_api.TimeoutError):  # no hit: the assertion below says so
            search.wait_for_selector("ul.search li", timeout=20_000)
        hits = search.eval_on_selector_all("ul.search li a", "els => els.map(e => e.textContent)")
        search.screenshot(path=str(SCREENSHOTS / "search.png"), full_page=False)
        browser.close()
    print(f"\nbrowser: {len(results)} pages in {time.perf_counter() - start:.1f} s")
    return {"pages": results, "search_hits": hits}


def _report(crawl, key: str) -> dict[str, list]:
    return {page: r[key] for page, r in crawl["pages"].items() if r[key]}


def test_book_has_the_expected_pages(crawl):
    pages = set(crawl["pages"])
    expected = _toc_pages()
    assert {"book/instructors.html", "labs/lab1_rnnpool.html", "notebooks/99_summary.html"} <= set(expected)
    missing = [page for page in expected if page not in pages]
    assert not missing, f"pages of _toc.yml missing from the build: {missing} (pages: {sorted(pages)})"


def test_no_code_scrolls_sideways_at_1280_px(crawl):
    """Every cell input and code block fits its column (scrollWidth <= clientWidth) at 1280 px."""
    wide = _report(crawl, "wide_code")
    assert not wide, "code wider than its column (split the lines to 75 characters):\n" + "\n".join(
        f"{page}: {line}" for page, lines in wide.items() for line in lines)
    checked = [page for page in _toc_pages() if page.startswith(("labs/", "book/instructors"))]
    assert all(page in crawl["pages"] for page in checked), "the labs and instructors pages were not crawled"


def test_no_javascript_errors(crawl):
    errors = {page: r["console"] + r["page_errors"] for page, r in crawl["pages"].items()
              if r["console"] or r["page_errors"]}
    assert not errors, f"JavaScript errors: {errors}"


def test_nothing_loaded_from_the_network(crawl):
    assert not _report(crawl, "external"), f"pages request outside resources: {_report(crawl, 'external')}"
    assert not _report(crawl, "failed"), f"failed resource loads: {_report(crawl, 'failed')}"


def test_every_image_is_shown(crawl):
    broken = {page: [i["src"] for i in r["images"] if not (i["width"] and i["height"])]
              for page, r in crawl["pages"].items()}
    broken = {k: v for k, v in broken.items() if v}
    assert not broken, f"images with zero natural size: {broken}"
    assert sum(len(r["images"]) for r in crawl["pages"].values()) > 5, "the chapters' figures are missing"


def test_every_formula_is_typeset(crawl):
    untypeset = {page: [m["text"] for m in r["math"] if not m["typeset"]] for page, r in crawl["pages"].items()}
    untypeset = {k: v for k, v in untypeset.items() if v}
    assert not untypeset, f"math elements MathJax did not typeset: {untypeset}"
    raw = {page: RAW_MATH.findall(r["text"]) for page, r in crawl["pages"].items()}
    raw = {page: _context(crawl["pages"][page]["text"]) for page, hits in raw.items() if hits}
    assert not raw, f"raw TeX delimiters left in the text: {raw}"
    assert any(r["math"] for r in crawl["pages"].values()), "no math found at all: is MathJax loaded?"


def _context(text: str) -> list[str]:
    return [text[max(0, m.start() - 40): m.end() + 40] for m in RAW_MATH.finditer(text)][:3]


def test_every_internal_link_resolves(book, crawl):
    ids_by_page = {page: set(r["ids"]) for page, r in crawl["pages"].items()}
    broken = []
    for page, r in crawl["pages"].items():
        base = "http://book/" + page
        for href in r["links"]:
            url = urlparse(urljoin(base, href))
            if url.scheme not in ("http", "https") or url.netloc != "book":
                continue  # external links (launch buttons, repository) are not followed offline
            target = unquote(url.path.lstrip("/")) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (book / target).is_file():
                broken.append(f"{page}: {href} (no file {target})")
            elif url.fragment and target in ids_by_page and unquote(url.fragment) not in ids_by_page[target]:
                broken.append(f"{page}: {href} (no anchor #{url.fragment} in {target})")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_search_finds_rnnpool(crawl):
    assert crawl["search_hits"], "the search page found nothing for 'RNNPool'"


def test_exercise_solutions_are_folded(crawl):
    """sphinx-exercise + sphinx-togglebutton: each solution is a dropdown, closed until clicked."""
    open_ = {page: [s["id"] for s in r["solutions"] if not (s["button"] and s["hidden"])]
             for page, r in crawl["pages"].items()}
    open_ = {k: v for k, v in open_.items() if v}
    assert not open_, f"solutions shown unfolded (missing `:class: dropdown`?): {open_}"
    assert any(r["exercises"] for r in crawl["pages"].values()), "no exercise rendered in the book"


def test_screenshots_written(crawl):
    missing = [page for page, r in crawl["pages"].items() if not Path(r["screenshot"]).stat().st_size]
    assert not missing, f"empty screenshots: {missing}"
