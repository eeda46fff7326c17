"""A Sphinx extension for the course's book (``_config.yml``: ``extra_extensions``).

sphinx-thebe adds its configuration script from an ``env-before-read-docs`` handler, which runs
once per build pass; with Sphinx 7 and Jupyter Book 1 a page then declares ``const THEBE_JS_URL``
twice, and the browser reports "Identifier 'THEBE_JS_URL' has already been declared" on every
page. This extension drops repeated scripts from each page's context, so every script appears
once (the browser check, ``tests/test_book_browser.py``, fails on such console errors).
"""
from __future__ import annotations


def _key(js) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    return (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = _key(js)
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=999)   # after every other
    return {"parallel_read_safe": True, "parallel_write_safe": True}
