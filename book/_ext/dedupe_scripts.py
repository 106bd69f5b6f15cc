"""Drop a page's repeated inline scripts (Sphinx extension, loaded by _config.yml).

Why: sphinx-thebe (0.3.1, always loaded by Jupyter Book 1.x) registers its inline configuration
script, ``const THEBE_JS_URL = ...``, with ``app.add_js_file(None, body=...)`` during
``env-before-read-docs``, after the HTML builder has collected the registered scripts. Sphinx 7
then holds it twice, once as ``filename=None`` (added to the builder directly) and once as
``filename=''`` (re-collected from the registry), and the two do not compare equal, so every page
carries the ``<script>`` twice and the second one throws "Identifier 'THEBE_JS_URL' has already
been declared". Keeping the first copy of each inline body fixes every page.
"""
from __future__ import annotations

from typing import Any


def _dedupe(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    kept = []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        body = attributes.get("body")
        if body and not getattr(script, "filename", None):
            key = (body, str(sorted((k, v) for k, v in attributes.items() if k != "body")))
            if key in seen:
                continue
            seen.add(key)
        kept.append(script)
    scripts[:] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
