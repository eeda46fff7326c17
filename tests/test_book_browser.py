"""The built book as a reader meets it, in a real browser with no network.

Drives Debian's Chromium (``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, through selenium)
over ``_build/html`` served on localhost, and checks every page: it loads with no console error,
no image is broken, every internal link (glossary terms and ``{doc}`` references included) points at
a page and an anchor that exist, the math is typeset by MathJax (its output elements are there and
no raw ``\\(`` is left), and every solution dropdown starts collapsed and opens on a click. Widget
outputs are removed from the committed notebooks (``python -m mixcon_lite.classroom clean``); what
stands in their place must not be a "loading widget" placeholder.

Run after building the book::

    jupyter-book build . -W --keep-going
    MIXCON_LITE_BROWSER_CHECK=1 python -m pytest tests/test_book_browser.py

Without ``MIXCON_LITE_BROWSER_CHECK=1`` the module is skipped (a build left from an earlier edit
would be checked otherwise); with it (``.ci/run`` sets it after building the book), a missing build,
browser or selenium fails, saying what to install.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
REQUIRED = os.environ.get("MIXCON_LITE_BROWSER_CHECK") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing() -> str | None:
    if not (HTML / "index.html").is_file():
        return (f"no built book at {HTML}: run `jupyter-book build . -W --keep-going` from the "
                "repository root first")
    if not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()):
        return ("Chromium and its driver are not installed: `apt-get install chromium "
                "chromium-driver` (Debian) puts them at /usr/bin/chromium and /usr/bin/chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: `pip install -r requirements.txt`"
    return None


if not REQUIRED:
    pytest.skip("the browser check runs with MIXCON_LITE_BROWSER_CHECK=1, after building the book",
                allow_module_level=True)
_why = _missing()
if _why is not None:
    raise RuntimeError(f"browser check requested (MIXCON_LITE_BROWSER_CHECK=1) but {_why}")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: The pages of the book: every HTML file the build wrote, less Sphinx's generated indexes.
SKIP = {"genindex.html", "search.html", "py-modindex.html"}
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).parts[0].startswith("_") and p.name not in SKIP)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _load(browser, url):
    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    # MathJax 3 typesets after load; its startup promise resolves when the page is done
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  MathJax.startup.promise.then(() => done(true), () => done(false));"
        "else done(null);")
    return browser.get_log("browser")


def test_the_book_has_its_pages():
    names = set(PAGES)
    assert "intro.html" in {Path(p).name for p in names} or "index.html" in names
    assert sum(p.startswith("notebooks/") for p in names) >= 11, sorted(names)


def test_the_site_root_has_a_favicon():
    # a browser asks for /favicon.ico on a page with no icon link (the root index.html that
    # Jupyter Book writes is a bare redirect); whether that 404 reaches the console depends on
    # timing, so the file's presence is checked here directly (_config.yml: html_extra_path)
    assert (HTML / "favicon.ico").is_file(), "no favicon.ico at the site's root"


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_correctly(browser, server, page):
    logs = _load(browser, urljoin(server, page))
    errors = [e["message"] for e in logs if e.get("level") == "SEVERE"]
    assert not errors, f"{page}: console errors {errors}"

    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.getAttribute('src'))")
    assert not broken, f"{page}: broken images {broken}"

    # math: every math element typeset, no TeX delimiter left in what the reader sees
    n_math, n_typeset = browser.execute_script(
        "const m = [...document.querySelectorAll('article .math')];"
        "return [m.length, m.filter(e => e.querySelector('mjx-container')).length]")
    assert n_typeset == n_math, f"{page}: {n_math - n_typeset} of {n_math} formulas not typeset"
    text = browser.find_element(By.TAG_NAME, "article").text
    for raw in ("\\(", "\\[", "$$"):
        assert raw not in text, f"{page}: raw TeX {raw!r} left in the page's text"

    # widgets: the committed notebooks carry no widget state, so nothing may wait for one
    assert "Loading widget" not in text and "Error displaying widget" not in text, page

    # internal links: the target page exists, and so does its anchor
    links = browser.execute_script(
        "return [...document.querySelectorAll('article a[href]')].map(a => a.href)")
    for href in links:
        target, frag = urldefrag(href)
        if urlparse(target).netloc != urlparse(server).netloc:
            continue
        rel = unquote(urlparse(target).path).lstrip("/") or "index.html"
        path = HTML / rel
        assert path.is_file() or (path / "index.html").is_file(), f"{page}: broken link {href}"
        if frag and path.suffix == ".html":
            html = path.read_text(encoding="utf-8")
            assert f'id="{frag}"' in html, f"{page}: link {href} to a missing anchor"

    # solutions (sphinx-exercise + sphinx-togglebutton): collapsed until their button is clicked
    drops = browser.find_elements(By.CSS_SELECTOR, "div.solution.dropdown")
    if page.startswith("notebooks/") and page.split("/")[-1][:2].isdigit():
        assert drops, f"{page}: a chapter without solution dropdowns"
    for d in drops:
        body = d.find_element(By.CSS_SELECTOR, ":scope > section")
        assert not body.is_displayed(), f"{page}: a solution starts open"
    if drops:
        d = drops[0]
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", d)
        d.find_element(By.CSS_SELECTOR, "button.toggle-button").click()
        WebDriverWait(browser, 5).until(
            lambda _: d.find_element(By.CSS_SELECTOR, ":scope > section").is_displayed())


def test_figures_have_alt_text(browser, server):
    """Every figure a chapter shows carries alt text (a description for a screen reader)."""
    missing = {}
    for page in PAGES:
        _load(browser, urljoin(server, page))
        n = browser.execute_script(
            "return [...document.querySelectorAll('article img')]"
            ".filter(i => !(i.getAttribute('alt') || '').trim()).length")
        if n:
            missing[page] = n
    assert not missing, f"images without alt text, per page: {missing}"
