"""End-to-end check of the rendered book.

Builds the Jupyter Book into a temporary folder (warnings are errors), serves the HTML
on 127.0.0.1 and opens every page of `book/_toc.yml` in headless Chromium: each page
must load, have a title, show all its images and have no broken internal links (nor links
to a missing section anchor of another page), and log no console error. Further reader checks:
the maths renders with the network off (MathJax is served by the book), every table shows its
first three columns without scrolling at 1280x900 and wide tables scroll in their own box, and
the front page's first screen shows the main findings. A full-page screenshot of the front page
is saved to `book/_build/screenshots/front.png`; screenshots of the front page, a chapter and the
rerun page go to $BOOK_SCREENSHOTS (default: `book-screenshots` in the system's temporary folder).

Needs Debian's Chromium at /usr/bin/chromium (`make chromium`); no browser is downloaded.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
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
SCREENSHOT_DIR = Path(os.environ.get("BOOK_SCREENSHOTS") or Path(tempfile.gettempdir()) / "book-screenshots")
SCREENSHOT_PAGES = {"front.png": "index.html", "chapter.png": "book/refusal_steering.html", "rerun.png": "book/rerun.html"}
VIEWPORT = {"width": 1280, "height": 900}
KEY_COLUMNS = 3  # the columns of every table a reader must see without scrolling
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
    context = browser.new_context(viewport=VIEWPORT)
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


def console_errors(page, url: str) -> list[str]:
    """Console errors and uncaught exceptions logged while `url` loads and settles."""
    errors = []

    def record(msg):
        if msg.type == "error":
            where = (msg.location or {}).get("url", "")
            errors.append(f"console error: {msg.text}" + (f" ({where})" if where else ""))

    page.on("console", record)
    page.on("pageerror", lambda exc: errors.append(f"uncaught exception: {exc}"))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # scripts loaded with async/defer that report after the network settles
    return errors


def block_other_hosts(context, base: str) -> list[str]:
    """Abort every request of `context` that is not to the local server; returns the list of aborted URLs."""
    blocked = []

    def route(route):
        if route.request.url.startswith(base) or route.request.url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return blocked


_MATHS_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const article = document.querySelector("article") || document.body;
  const maths = Array.from(article.querySelectorAll(".math"));
  return {
    mathjax: !!(window.MathJax && window.MathJax.version),
    maths: maths.length,
    rendered: article.querySelectorAll("mjx-container").length,
    unrendered: maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.trim().slice(0, 60)),
    // visible text outside code (where a backslash-parenthesis is not maths) that still holds TeX delimiters
    raw: (() => {
      const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
      const raw = [];
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest("pre, code, script, style, mjx-container")) continue;
        if (parent.getClientRects().length === 0) continue;  // not displayed
        const text = node.textContent;
        const at = Math.max(text.indexOf("\\\\("), text.indexOf("\\\\["));
        if (at >= 0) raw.push(text.slice(Math.max(0, at - 40), at + 60).replace(/\\s+/g, " "));
      }
      return raw;
    })(),
  };
}"""


def maths_problems(page, url: str) -> list[str]:
    """What is wrong with the maths of the page at `url`: MathJax missing, formulas left as TeX source."""
    page.goto(url, wait_until="load")
    result = page.evaluate(_MATHS_JS)
    problems = []
    if not result["mathjax"]:
        problems.append("MathJax did not load (window.MathJax.version is unset)")
    if result["rendered"] == 0:
        problems.append(f"no MathJax output (mjx-container) for its {result['maths']} formulas")
    problems += [f"formula not rendered: {tex}" for tex in result["unrendered"]]
    problems += [f"raw TeX in the visible text: ...{text!r}..." for text in result["raw"]]
    return problems


_TABLES_JS = """(keyColumns) => {
  const article = document.querySelector("article.bd-article") || document.querySelector("article") || document.body;
  const scroller = el => {
    for (let node = el.parentElement; node && node !== article; node = node.parentElement) {
      const overflow = getComputedStyle(node).overflowX;
      if (overflow === "auto" || overflow === "scroll") return node;
    }
    return article;
  };
  const label = table => {
    const caption = table.querySelector("caption");
    const cells = Array.from(table.querySelectorAll("tr")).slice(0, 1)
      .flatMap(row => Array.from(row.cells)).slice(0, 4).map(c => c.innerText.trim().replace(/\\s+/g, " ").slice(0, 30));
    let heading = null;
    for (let node = table; node && node !== article && !heading; node = node.parentElement) {
      if (node.tagName === "SECTION") {
        const h = node.querySelector("h1, h2, h3, h4");
        heading = h ? h.innerText.replace(/#$/, "").trim() : null;
      }
    }
    return {caption: caption ? caption.innerText.trim().slice(0, 80) : null, cells, heading};
  };
  return Array.from(article.querySelectorAll("table")).map((table, index) => {
    const box = table.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return null;  // hidden (a closed dropdown, another tab)
    const container = scroller(table);
    const rect = container.getBoundingClientRect();
    const visibleRight = rect.left + container.clientWidth;
    const row = table.querySelector("thead tr") || table.querySelector("tr");
    let keyRight = null, column = 0;
    for (const cell of row ? Array.from(row.cells) : []) {
      column += cell.colSpan || 1;
      keyRight = cell.getBoundingClientRect().right;
      if (column >= keyColumns) break;
    }
    return {
      index, ...label(table),
      scrolls: container !== article,
      tableWidth: Math.round(table.scrollWidth), boxWidth: Math.round(container.clientWidth),
      keyOverflow: keyRight === null ? 0 : Math.round(keyRight - visibleRight),
      pageOverflow: Math.round(box.right - (article.getBoundingClientRect().left + article.clientWidth)),
    };
  }).filter(t => t !== null);
}"""


def table_problems(page, url: str) -> list[str]:
    """Tables on the page at `url` whose first columns a reader cannot see without scrolling, or that
    stick out of the page instead of scrolling in their own box (at the test viewport)."""
    page.goto(url, wait_until="load")
    problems = []
    for table in page.evaluate(_TABLES_JS, KEY_COLUMNS):
        name = (f"table {table['index'] + 1} (caption {table['caption']!r}, " if table["caption"]
                else f"table {table['index'] + 1} (no caption, ") + \
            f"under {table['heading']!r}, first cells {table['cells']})"
        size = f"table {table['tableWidth']}px wide in a {table['boxWidth']}px box"
        if table["keyOverflow"] > 1:
            problems.append(f"{name}: its first {KEY_COLUMNS} columns end {table['keyOverflow']}px beyond the "
                            f"visible width ({size}): the reader must scroll to see them")
        if not table["scrolls"] and table["pageOverflow"] > 1:
            problems.append(f"{name}: sticks out of the page by {table['pageOverflow']}px instead of scrolling "
                            f"in its own box ({size})")
    return problems


_FIRST_SCREEN_JS = """(ids) => {
  const found = {};
  for (const id of ids) {
    const el = document.getElementById(id);
    if (!el) { found[id] = null; continue; }
    const section = el.tagName === "SECTION" ? el : (el.closest("section") || el);
    const heading = section.querySelector("h1, h2, h3, h4") || el;
    const block = Array.from(section.querySelectorAll("p, ul, ol, table, .cell_output"))
      .find(b => !b.closest("h1, h2, h3, h4") && b.getBoundingClientRect().height > 0);
    const rect = heading.getBoundingClientRect();
    let first = null;
    if (block) {
      const r = block.getBoundingClientRect();
      const style = getComputedStyle(block);
      const line = parseFloat(style.lineHeight) || 1.5 * parseFloat(style.fontSize) || 24;
      first = {tag: block.tagName.toLowerCase(), top: Math.round(r.top), bottom: Math.round(r.bottom),
               line: Math.round(line), text: block.innerText.trim().slice(0, 80),
               visible: style.visibility !== "hidden" && style.display !== "none" && parseFloat(style.opacity) > 0};
    }
    found[id] = {heading: heading.innerText.replace(/#$/, "").trim(), top: Math.round(rect.top), first};
  }
  return {found, height: window.innerHeight, scrollY: window.scrollY};
}"""


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


@pytest.mark.parametrize("page_path", PAGES)
def test_no_console_errors(page_path, page, server):
    """The toc page logs no console error and throws no uncaught exception while it loads."""
    errors = console_errors(page, server + page_path)
    assert not errors, f"{page_path} logs {len(errors)} error(s):\n  " + "\n  ".join(errors)


def test_repository_and_launch_links(html_dir):
    """Every notebook page links the repository and launches its notebook on Binder and Colab, and the
    source notebooks (`notebooks/*.ipynb`) are in the HTML at `notebooks/<name>.ipynb` for download."""
    repository = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    problems = []
    for page_path in PAGES:
        html = _page_text(html_dir / page_path) if (html_dir / page_path).is_file() else ""
        if f'href="{repository}"' not in html:
            problems.append(f"{page_path}: no link to the repository {repository}")
        if (REPO / page_path).with_suffix(".ipynb").is_file():
            for launcher in ("https://mybinder.org/v2/gh/", "https://colab.research.google.com/github/"):
                if launcher not in html:
                    problems.append(f"{page_path}: no launch button ({launcher}...)")
    sources = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sources, "no source notebook in notebooks/"
    problems += [f"source notebook not in the HTML: notebooks/{name}" for name in sources
                 if not (html_dir / "notebooks" / name).is_file()]
    assert not problems, "\n  ".join(["repository, launch and download links:", *problems])


def _pages_with_maths(html_dir: Path) -> list[str]:
    """The toc pages whose built HTML holds maths (MathJax's `math` class)."""
    return [p for p in PAGES if (html_dir / p).is_file() and 'class="math' in _page_text(html_dir / p)]


def test_maths_render_offline(browser, server, html_dir):
    """With every request to another host refused, MathJax (served by the book itself) renders every
    formula of each page that has maths, and no TeX source such as \\( ... \\) is left in the text."""
    pages = _pages_with_maths(html_dir)
    assert pages, "no toc page has maths (class=\"math\"): the offline maths check has nothing to check"
    context = browser.new_context(viewport=VIEWPORT)
    try:
        blocked = block_other_hosts(context, server)
        tab = context.new_page()
        tab.set_default_timeout(PAGE_TIMEOUT_MS)
        failures = []
        for page_path in pages:
            problems = maths_problems(tab, server + page_path)
            if problems:
                failures.append(f"{page_path}:\n    " + "\n    ".join(problems))
    finally:
        context.close()
    if blocked:
        failures.append("requests to other hosts (refused here, so the page needs a network):\n    "
                        + "\n    ".join(sorted(set(blocked))[:10]))
    assert not failures, "maths does not render without a network:\n  " + "\n  ".join(failures)


@pytest.mark.parametrize("page_path", PAGES)
def test_tables_show_key_columns(page_path, page, server):
    """At 1280x900 every table's first three columns lie within the visible width of its scroll box
    (the nearest ancestor with overflow-x auto/scroll, else the article), and a table wider than the
    text column scrolls inside its own box rather than sticking out of the page."""
    problems = table_problems(page, server + page_path)
    assert not problems, f"{page_path}: {len(problems)} table problem(s) at {VIEWPORT['width']}x" \
                         f"{VIEWPORT['height']}:\n  " + "\n  ".join(problems)


def test_front_page_first_screen(page, server):
    """At 1280x900 the front page (index.html redirects to the intro) opens on its main findings: the
    `main-findings` section starts above y = 900 and the first line of its first paragraph or list is in
    the first screen; the page also has a `limits` section."""
    page.goto(server + "index.html", wait_until="load")
    page.wait_for_url("**/book/intro.html")
    page.wait_for_load_state("networkidle")
    result = page.evaluate(_FIRST_SCREEN_JS, ["main-findings", "limits"])
    height = result["height"]
    problems = []
    findings = result["found"]["main-findings"]
    if findings is None:
        problems.append("no element with id `main-findings` (a \"Main findings\" section heading)")
    else:
        if findings["top"] >= height:
            problems.append(f"the `main-findings` heading {findings['heading']!r} starts at y = {findings['top']}, "
                            f"below the first screen (y < {height})")
        first = findings["first"]
        if first is None:
            problems.append(f"the `main-findings` section ({findings['heading']!r}) has no paragraph or list")
        elif not first["visible"] or first["top"] < 0 or first["top"] + first["line"] > height:
            problems.append(f"the first {first['tag']} of `main-findings` ({first['text']!r}) spans y = "
                            f"{first['top']}..{first['bottom']}: its first line is not in the first screen "
                            f"(y < {height})")
    if result["found"]["limits"] is None:
        problems.append("no element with id `limits` (a \"Limits\" section)")
    assert not problems, "book/intro.html (front page):\n  " + "\n  ".join(problems)


def test_screenshots(page, server):
    """Full-page screenshots of the front page, a chapter and the rerun page, saved to $BOOK_SCREENSHOTS."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for name, page_path in SCREENSHOT_PAGES.items():
        page.goto(server + page_path, wait_until="load")
        page.wait_for_load_state("networkidle")
        path = SCREENSHOT_DIR / name
        page.screenshot(path=str(path), full_page=True)
        assert path.is_file() and path.stat().st_size > 0, f"empty screenshot {path} of {page_path}"
    print(f"screenshots in {SCREENSHOT_DIR}")
