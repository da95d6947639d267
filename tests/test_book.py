"""End-to-end check of the rendered book.

Builds the Jupyter Book into a temporary folder (warnings are errors), serves the HTML
on 127.0.0.1 and opens every page of `book/_toc.yml` in headless Chromium: each page
must load, have a title, show all its images and have no broken internal links (nor links
to a missing section anchor of another page). A
full-page screenshot of the front page is saved to `book/_build/screenshots/front.png`.

Needs Debian's Chromium at /usr/bin/chromium (`make chromium`); no browser is downloaded.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TOC = REPO / "book" / "_toc.yml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO / "book" / "_build" / "screenshots" / "front.png"
BUILD_TIMEOUT_S = 600
PAGE_TIMEOUT_MS = 30_000


# ---------------------------------------------------------------- table of contents


pytestmark = pytest.mark.notebook  # builds the book: not in the fast lane

def _toc_files(entries: list[dict]) -> list[str]:
    """The `file:` of each toc entry, followed by those of its nested `sections`."""
    files = []
    for entry in entries or []:
        if "file" in entry:
            files.append(entry["file"])
        files.extend(_toc_files(entry.get("sections", [])))
    return files


def toc_pages(toc_path: Path = TOC) -> list[str]:
    """HTML paths (relative to the html root) of every page in the toc, root first."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files.extend(_toc_files(part.get("chapters", [])))
    files.extend(_toc_files(toc.get("chapters", [])))  # a toc without parts
    return [str(Path(f).with_suffix("")) + ".html" for f in files]


PAGES = toc_pages()


# ---------------------------------------------------------------- build and serve


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """Build the book once for this module; returns (process result, html folder)."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jupyter_book), "build", str(REPO), "--toc", "book/_toc.yml",
           "--path-output", str(out), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    return proc, out / "_build" / "html"


def _build_report(proc: subprocess.CompletedProcess) -> str:
    """The end of the build's output, for failure messages."""
    return f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def html_dir(build) -> Path:
    """The built HTML folder; fails every dependent test if the build did not produce it."""
    proc, html = build
    if not (html / "index.html").is_file():
        pytest.fail(f"the book build produced no {html / 'index.html'}\n{_build_report(proc)}")
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that does not log every request."""

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    """Threading HTTP server that stays silent when the browser drops a connection."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def server(html_dir) -> str:
    """Serve the built HTML on a free port of 127.0.0.1; yields the base URL (ends with /)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# ---------------------------------------------------------------- browser


def _require_chromium() -> None:
    """Fail (not skip) with the fix when Debian's Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` to install Debian's Chromium "
                    "(the book tests never download a browser)", pytrace=False)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by playwright's sync API."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser page (own context) for one test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield tab
    finally:
        context.close()


# ---------------------------------------------------------------- page checks

_IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map(img => img.decode().catch(() => null)));
  return imgs.map(img => ({src: img.getAttribute("src") || "", width: img.naturalWidth}));
}"""

_LINKS_JS = "els => els.map(e => e.getAttribute('href'))"


def broken_images(page) -> list[str]:
    """`src` of every <img> on the page that did not load (naturalWidth 0)."""
    return [img["src"] for img in page.evaluate(_IMAGES_JS) if img["width"] <= 0]


def internal_links(page_url: str, hrefs: list[str], base: str) -> set[str]:
    """Absolute URLs (no fragment) of the hrefs that point into the served book.

    Skipped: anchors on the same page (`#...`), `mailto:`/`javascript:` and every other
    scheme, and absolute links to any other host.
    """
    server = urlsplit(base).netloc
    links = set()
    for href in hrefs:
        href = (href or "").strip()
        if not href or href.startswith("#"):
            continue
        parts = urlsplit(href)
        if parts.scheme and parts.scheme not in ("http", "https"):
            continue  # mailto:, javascript:, data:, ...
        if parts.netloc and parts.netloc != server:
            continue  # external site
        links.add(urldefrag(urljoin(page_url, href)).url)
    return links


@functools.lru_cache(maxsize=None)
def link_resolves(url: str, html_dir: Path) -> bool:
    """True if `url` on the local server answers 200, or names a file in the build folder."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=10) as response:
            if response.status == 200:
                return True
    except (urllib.error.URLError, OSError):
        pass
    path = unquote(urlsplit(url).path).lstrip("/")
    target = html_dir / path
    return target.is_file() or (target / "index.html").is_file()


def missing_anchors(page_url: str, hrefs: list[str], base: str, html_dir: Path) -> list[str]:
    """Links into another page of the book whose ``#anchor`` that page does not have (e.g. a scorecard
    link to a section heading that was renamed)."""
    missing = []
    for href in hrefs:
        url, fragment = urldefrag(urljoin(page_url, (href or "").strip()))
        if not fragment or not url.startswith(base) or url == urldefrag(page_url).url:
            continue
        target = html_dir / unquote(urlsplit(url).path).lstrip("/")
        if target.is_file() and f'id="{fragment}"' not in _page_text(target):
            missing.append(f"missing anchor: {href}")
    return sorted(set(missing))


@functools.lru_cache(maxsize=None)
def _page_text(path: Path) -> str:
    """A built HTML file's text (read once per test session)."""
    return path.read_text(errors="replace")


def page_problems(page, url: str, base: str, html_dir: Path) -> list[str]:
    """Everything wrong with the page at `url`, as readable lines (empty when fine)."""
    failed_requests = []

    def record_failure(response):
        if response.url.startswith(base) and response.status >= 400:
            failed_requests.append(f"{response.status} {response.url[len(base):]}")

    page.on("response", record_failure)
    response = page.goto(url, wait_until="load")
    if response is None or response.status != 200:
        return [f"page did not load: HTTP {response.status if response else 'no response'}"]
    problems = []
    if not page.title().strip():
        problems.append("empty <title>")
    problems += [f"image not loaded: {src}" for src in broken_images(page)]
    hrefs = page.eval_on_selector_all("a[href]", _LINKS_JS)
    for link in sorted(internal_links(page.url, hrefs, base)):
        if not link_resolves(link, html_dir):
            problems.append(f"broken internal link: {link[len(base):] or '/'}")
    problems += missing_anchors(page.url, hrefs, base, html_dir)
    problems += [f"resource request failed: HTTP {line}" for line in failed_requests]
    return problems


# ---------------------------------------------------------------- tests


def test_chromium_installed():
    """Debian's Chromium is where the browser tests expect it."""
    _require_chromium()


def test_toc_lists_pages():
    """The toc yields the root page and at least one chapter, each once."""
    assert len(PAGES) >= 2, f"toc lists only {PAGES}"
    assert len(set(PAGES)) == len(PAGES), f"toc lists a page twice: {PAGES}"


def test_build_succeeds(build):
    """The book builds with warnings as errors and writes index.html."""
    proc, html = build
    assert proc.returncode == 0, f"jupyter-book build failed\n{_build_report(proc)}"
    assert (html / "index.html").is_file(), f"no index.html in {html}"


@pytest.mark.parametrize("page_path", PAGES)
def test_page(page_path, page, server, html_dir):
    """The toc page loads (200), has a title, shows its images and has no broken internal links."""
    assert (html_dir / page_path).is_file(), f"{page_path} was not built"
    problems = page_problems(page, server + page_path, server, html_dir)
    assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)


def test_front_page_screenshot(page, server):
    """index.html redirects to the intro; a full-page screenshot of it is saved and non-empty."""
    page.goto(server + "index.html", wait_until="load")
    page.wait_for_url("**/book/intro.html")
    page.wait_for_load_state("networkidle")
    assert page.title().strip(), "front page has an empty <title>"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 0, f"empty screenshot {SCREENSHOT}"
