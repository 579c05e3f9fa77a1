"""The documentation site builds cleanly and its pages work in a real browser.

The site (``docs/``, Sphinx + MyST-NB) is built once per test session into a temporary folder with
warnings as errors and nitpicky cross-references (``-W --keep-going -n``); the build executes
every lecture in FAST mode, so a lecture that raises fails it. The built pages are then served
from a local ``http.server`` on 127.0.0.1 and opened in headless Chromium (Debian's
``/usr/bin/chromium``, driven by Playwright without a downloaded browser). On every lecture page,
the getting-started page and the API index the test asserts that

* every image loaded (``naturalWidth > 0``), a lecture page has figures at all, and no figure
  is shown as the text ``<Figure size ...>`` (what IPython prints without its inline formatters);
* the math rendered: every Sphinx math element holds MathJax output, MathJax reported no TeX
  error, and no raw ``$$`` / ``\\(`` / ``\\[`` delimiters are left in the text;
* the console shows no error, no script raised, every request of the page succeeded, and no
  request left 127.0.0.1 (MathJax and the theme are served by the site itself).

Outside CI the test skips, with the reason, where the docs extra or Chromium is missing
(``pip install -e '.[docs]'``; ``apt-get install -y chromium``). In CI (``CI`` set) a missing
piece is a failure, not a skip: ``.ci/run`` installs both.

``LATTICEML_DOCS_SCREENSHOTS=DIR`` saves a full-page PNG of every checked page into DIR;
``LATTICEML_DOCS_SITE=DIR`` checks a site already built there instead of building one.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import pytest
from docs_site import missing

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = pathlib.Path("/usr/bin/chromium")
# Flags for a headless Chromium as root on a machine without a network: without the
# background-networking ones it waits for services it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LECTURES = sorted(p.stem for p in (ROOT / "lectures").glob("[0-9][0-9]_*.ipynb"))
PAGES = [f"lectures/{stem}.html" for stem in LECTURES] + ["getting_started.html", "api/index.html"]


def test_site_has_every_page(site):
    """Every lecture, the API reference of every public module, the CLI and benchmark pages exist."""
    for page in PAGES + ["index.html", "cli.html", "benchmarks.html", "contributing.html", "lectures.html"]:
        assert (site / page).is_file(), f"{page} missing from the built site"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for module in ["latticeml.lattice", "latticeml.groups", "latticeml.theories", "latticeml.samplers", "latticeml.stats"]:
        assert f"generated/{module}.html" in api, f"{module} is not in the API index"
    cli = (site / "cli.html").read_text(encoding="utf-8")
    for command in ["info", "figures", "sample", "flow"]:
        assert re.search(rf"latticeml {command}\b", cli), f"`latticeml {command}` missing from the command line reference"
    # MathJax comes with the site (offline), not from a CDN
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def server(site):
    """The built site over HTTP on 127.0.0.1 (a free port), for the whole session."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} not found: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: pip install -e '.[docs]'")
    with sync_playwright() as p:
        # launch() gives the browser a fresh temporary profile (--user-data-dir) of its own
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# Runs in the page: make every image load now (no lazy loading off screen) and report each one.
_IMAGES_JS = """async () => {
  const images = [...document.images];
  for (const img of images) img.loading = 'eager';
  await Promise.all(images.map(img => img.complete ? null
      : new Promise(resolve => { img.addEventListener('load', resolve); img.addEventListener('error', resolve); })));
  return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth, complete: img.complete}));
}"""

# Runs in the page once MathJax has typeset: Sphinx's math elements, MathJax's output, errors, and
# the page's text outside code (where a $$ would mean math that was never typeset).
_MATH_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const math = [...document.querySelectorAll('span.math, div.math')];
  const clone = document.querySelector('article, [role=main], body').cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  return {
    mathjax: !!(window.MathJax && MathJax.version),
    elements: math.length,
    untypeset: math.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
    containers: document.querySelectorAll('mjx-container').length,
    errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 80)),
    text: clone.innerText,
  };
}"""


@pytest.mark.parametrize("page_path", PAGES)
def test_page_in_browser(page_path, server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors, page_errors, failed, external = [], [], [], []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: failed.append(f"{r.url} (HTTP {r.status})") if r.status >= 400 else None)

    def route(request_route):
        url = request_route.request.url
        if url.startswith(server) or url.startswith(("data:", "blob:", "about:")):
            request_route.continue_()
        else:  # the site must work offline: nothing from other hosts
            external.append(url)
            request_route.abort()

    page.route("**/*", route)
    try:
        page.goto(f"{server}/{page_path}", wait_until="load", timeout=60_000)
        images = page.evaluate(_IMAGES_JS)
        figure_reprs = page.evaluate("() => document.body.innerText.split('<Figure size').length - 1")
        math = page.evaluate(_MATH_JS)
        page.wait_for_timeout(200)  # late console messages (MathJax font loads)
        shots = os.environ.get("LATTICEML_DOCS_SCREENSHOTS")
        if shots:
            pathlib.Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(pathlib.Path(shots) / (page_path.replace("/", "_").removesuffix(".html") + ".png")), full_page=True)
    finally:
        page.close()

    assert not external, f"{page_path} requested other hosts (the site must work offline): {external}"
    assert not failed, f"{page_path}: failed requests: {failed}"
    assert not page_errors, f"{page_path}: uncaught script errors: {page_errors}"
    assert not console_errors, f"{page_path}: console errors: {console_errors}"

    assert figure_reprs == 0, f"{page_path}: {figure_reprs} figure(s) shown as the text '<Figure size ...>' instead of an image"
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    if page_path.startswith("lectures/") or page_path == "getting_started.html":
        assert images, f"{page_path} shows no figure: were the notebook's outputs rendered?"
        assert math["elements"] > 0, f"{page_path} has no math elements: is dollarmath enabled?"

    assert math["mathjax"] or math["elements"] == 0, f"{page_path}: MathJax did not load"
    assert not math["untypeset"], f"{page_path}: math left untypeset: {math['untypeset'][:5]}"
    assert math["containers"] >= math["elements"]
    assert not math["errors"], f"{page_path}: TeX errors: {math['errors'][:5]}"
    raw = [d for d in ("$$", "\\(", "\\[") if d in math["text"]]
    assert not raw, f"{page_path}: raw math delimiters {raw} in the rendered text"


def test_generated_files_are_ignored(site):
    """What the build writes into docs/ (executed lectures, API stubs) is ignored by git, like the site."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    generated = [
        "docs/_build/html/index.html",
        "docs/api/generated/latticeml.rst",
        "docs/api/modules.rst",
        "docs/lectures/01_x.ipynb",
        "docs/jupyter_execute/x.ipynb",
    ]
    ignored = subprocess.run(["git", "check-ignore", *generated], cwd=ROOT, capture_output=True, text=True)
    missing = sorted(set(generated) - set(ignored.stdout.split()))
    assert not missing, f"generated by the docs build but not in .gitignore: {missing}"


def test_a_failing_lecture_stops_the_build(tmp_path):
    """The executor behind the build raises, naming the lecture and the error, when a cell raises."""
    pytest.importorskip("sphinx")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import latticeml_docs
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    src = tmp_path / "src"
    src.mkdir()
    good, bad = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    good.cells = [nbformat.v4.new_code_cell("x = 1 + 1\nx")]
    bad.cells = [nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'arithmetic is broken'")]
    nbformat.write(good, src / "01_good.ipynb")
    nbformat.write(bad, src / "02_bad.ipynb")
    with pytest.raises(RuntimeError, match=r"(?s)02_bad\.ipynb.*arithmetic is broken"):
        latticeml_docs.execute_lectures(sorted(src.glob("*.ipynb")), tmp_path / "out", jobs=2)
    executed = nbformat.read(tmp_path / "out" / "01_good.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["data"]["text/plain"] == "2"  # the good one ran and was kept
    with pytest.raises(RuntimeError, match="folder of its own"):  # never over the sources
        latticeml_docs.execute_lectures(sorted(src.glob("*.ipynb")), src, jobs=1)
