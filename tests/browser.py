"""Headless Chromium for tests: open a local page, screenshot it, report broken images and console errors.

Playwright drives Debian's `chromium` (never a downloaded browser: `executable_path`). Without
Chromium the browser tests skip, except under CI (env CI set), where a missing browser fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

CHROMIUM_FLAGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-dev-shm-usage',
    '--hide-scrollbars',
]
LOCAL_SCHEMES = ('file:', 'data:', 'blob:', 'about:')

# Waits (in the page) until every <img> has loaded or failed, at most `timeout` ms, then lists them.
IMAGES_SCRIPT = """
async (timeout) => {
  const images = Array.from(document.images);
  const settled = img => img.complete ? Promise.resolve() :
    new Promise(resolve => { img.addEventListener('load', resolve); img.addEventListener('error', resolve); });
  await Promise.race([Promise.all(images.map(settled)), new Promise(r => setTimeout(r, timeout))]);
  return images.map(img => ({
    src: img.getAttribute('src'), currentSrc: img.currentSrc, alt: img.getAttribute('alt'),
    complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
  }));
}
"""


def find_chromium() -> str | None:
    """Path of Debian's Chromium executable, or None."""
    for name in ('chromium', 'chromium-browser'):
        path = shutil.which(name)
        if path:
            return path
    return '/usr/bin/chromium' if os.access('/usr/bin/chromium', os.X_OK) else None


def ci_is_set() -> bool:
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')


def require_chromium() -> str:
    """The Chromium executable; skips the test without one (or without Playwright), unless CI is set: then it fails."""
    executable = find_chromium()
    message = None
    if executable is None:
        message = 'chromium is not installed (make test installs it with apt-get when run as root)'
    elif importlib.util.find_spec('playwright') is None:
        message = "playwright is not installed (pip install -e '.[dev]')"
    if message is not None:
        if ci_is_set():
            pytest.fail(f'{message}; CI is set, so the browser test must run')
        pytest.skip(message)
    return executable


@dataclass
class PageReport:
    """What one page load produced."""

    url: str
    screenshot: Path
    images: list[dict[str, Any]]
    """Each `<img>`: src, currentSrc, alt, complete, naturalWidth, naturalHeight."""
    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and failed loads (e.g. of an image)."""
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested."""

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [img for img in self.images if not (img['complete'] and img['naturalWidth'] > 0)]


def assert_page_clean(report: PageReport) -> None:
    """Every image loaded, no console error or uncaught exception, nothing fetched from the network."""
    assert not report.broken_images, f'{report.url}: broken images {report.broken_images}'
    assert not report.errors, f'{report.url}: errors in the page: {report.errors}'
    remote = [url for url in report.requests if not url.startswith(LOCAL_SCHEMES)]
    assert not remote, f'{report.url}: not offline, requested {remote}'


class Chromium:
    """A headless Chromium driven by Playwright; `open` loads one page in a fresh context."""

    def __init__(self, browser: Any, timeout: float = 30.0) -> None:
        self.browser = browser
        self.timeout = timeout

    def open(
        self,
        path: Path,
        screenshot: Path,
        color_scheme: str = 'light',
        width: int = 1280,
        height: int = 2000,
    ) -> PageReport:
        """Load a local file with `prefers-color-scheme: color_scheme`; screenshot the whole page.

        The viewport is `width` wide and at least `height` tall, grown to the page's full height
        before images are checked (so lazily loaded images load too).
        """
        if color_scheme not in ('light', 'dark'):
            raise ValueError(f"color_scheme must be 'light' or 'dark', got {color_scheme!r}")
        url = path.resolve().as_uri()
        report = PageReport(url=url, screenshot=screenshot, images=[])
        context = self.browser.new_context(
            viewport={'width': width, 'height': height}, color_scheme=color_scheme, device_scale_factor=1
        )
        try:
            page = context.new_page()
            page.set_default_timeout(self.timeout * 1000)

            def on_console(message: Any) -> None:
                if message.type not in ('error', 'assert'):
                    return
                where = message.location.get('url', '')
                report.errors.append(f'console.{message.type}: {message.text}' + (f' {where}' if where != url else ''))

            page.on('console', on_console)
            page.on('pageerror', lambda error: report.errors.append(f'uncaught: {error}'))
            page.on('requestfailed', lambda r: report.errors.append(f'request failed: {r.url} ({r.failure})'))
            page.on('request', lambda r: report.requests.append(r.url))
            page.goto(url, wait_until='load')
            full_height = page.evaluate('document.documentElement.scrollHeight')
            page.set_viewport_size({'width': width, 'height': max(height, full_height)})
            report.images = page.evaluate(IMAGES_SCRIPT, int(self.timeout * 1000))
            page.screenshot(path=screenshot, full_page=True)
        finally:
            context.close()
        return report


@contextmanager
def chromium(executable: str) -> Iterator[Chromium]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield Chromium(browser)
        finally:
            browser.close()


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def read_screenshot(path: Path) -> np.ndarray:
    """The screenshot as an `[H, W, 3]` float image, after checking it is a real, non-flat PNG."""
    assert path.is_file(), f'no screenshot at {path}'
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f'{path.name} is not a PNG'
    image = matplotlib.image.imread(path)
    assert image.ndim == 3, image.shape
    assert image.shape[1] == 1280, image.shape
    assert image.shape[0] >= 200, image.shape
    rgb = image[..., :3]
    assert rgb.reshape(-1, 3).std(axis=0).max() > 0.02, f'{path.name} is a single flat colour'
    return rgb


def image_luminance(rgb: np.ndarray) -> float:
    """Mean Rec. 709 luminance of an `[H, W, 3]` image in [0, 1]."""
    return float((rgb @ np.array([0.2126, 0.7152, 0.0722])).mean())
