"""Open a report in headless Chromium and read what its script reports (tests, benchmarks).

The page's script writes its state into ``<pre id="d4d-status">`` as ``data-*`` attributes
(docs/inspection.md, "Status markers"); ``load_page`` returns them after Chromium ran the
script for ``virtual_time_ms`` of virtual time.
"""

from __future__ import annotations

import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

#: Headless, sandbox-free (root in containers), and no background network traffic: the page
#: needs none, and a closed network makes Chromium's own connections fail noisily.
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


class _StatusParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.status: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "d4d-status":
            self.status = {k[5:]: v for k, v in attrs.items() if k.startswith("data-")}


def page_status(dom: str) -> dict | None:
    """The ``data-*`` attributes of #d4d-status in a dumped DOM (without the prefix), or None."""
    parser = _StatusParser()
    parser.feed(dom)
    return parser.status


def load_page(url: str, profile: Path, *, height: int = 2000, screenshot: Path | None = None,
              virtual_time_ms: int = 5000, timeout_s: float = 300) -> tuple[float, dict | None]:
    """Open ``url`` in headless Chromium at 1280 x ``height``; returns (wall seconds from launch
    to exit, the page's status), the status being None when a screenshot was asked for instead.

    Raises RuntimeError naming the URL when Chromium fails.
    """
    args = [str(CHROMIUM), *HEADLESS_FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}", f"--virtual-time-budget={virtual_time_ms}"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    start = time.perf_counter()
    result = subprocess.run([*args, url], capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed on {url}: {result.stderr[-2000:]}")
    return wall, None if screenshot else page_status(result.stdout)
