"""The headless-Chromium harness proves itself on tiny pages written here (a clean page, a broken image,
a console error, an uncaught exception), so the report tests that use it (in test_report.py, beside
the run and sweep they share) are known to be able to fail.
Without Chromium the tests skip, except under CI (env CI set), where a missing browser fails
(the `browser` fixture in conftest.py; Playwright drives Debian's chromium, see tests/browser.py).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from tests.browser import Chromium, assert_page_clean, image_luminance, read_screenshot

# A page whose background follows the colour scheme, with one figure in a light and a dark version.
OK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ok</title>
<style>
  body { background: #ffffff; color: #111111; }
  @media (prefers-color-scheme: dark) { body { background: #101010; color: #eeeeee; } }
</style></head>
<body><h1>Fine</h1>
<picture>
  <source srcset="fig.dark.png" media="(prefers-color-scheme: dark)">
  <img src="fig.png" alt="A test figure">
</picture>
</body></html>
"""
BROKEN_IMAGE_PAGE = (
    '<!doctype html><html><body><img src="fig.png" alt="ok"><img src="missing.png" alt="gone"></body></html>'
)
CONSOLE_ERROR_PAGE = (
    "<!doctype html><html><body><p>hi</p><script>console.error('boom from console')</script></body></html>"
)
EXCEPTION_PAGE = "<!doctype html><html><body><p>hi</p><script>throw new Error('kaboom uncaught')</script></body></html>"


@pytest.fixture
def tiny_site(tmp_path: Path) -> Path:
    """A directory with the tiny pages and a light and a dark figure."""
    gradient = np.linspace(0, 1, 40 * 60).reshape(40, 60)
    matplotlib.image.imsave(tmp_path / 'fig.png', gradient, cmap='viridis')
    matplotlib.image.imsave(tmp_path / 'fig.dark.png', gradient, cmap='magma')
    pages = {
        'ok.html': OK_PAGE,
        'broken.html': BROKEN_IMAGE_PAGE,
        'console.html': CONSOLE_ERROR_PAGE,
        'exception.html': EXCEPTION_PAGE,
    }
    for name, html in pages.items():
        (tmp_path / name).write_text(html)
    return tmp_path


def test_harness_passes_a_clean_page_in_both_schemes(browser: Chromium, tiny_site: Path) -> None:
    light = browser.open(tiny_site / 'ok.html', tiny_site / 'ok-light.png', 'light', height=400)
    dark = browser.open(tiny_site / 'ok.html', tiny_site / 'ok-dark.png', 'dark', height=400)
    for report in (light, dark):
        assert_page_clean(report)
        [image] = report.images
        assert image['naturalWidth'] == 60
        assert image['naturalHeight'] == 40
    assert light.images[0]['currentSrc'].endswith('/fig.png')
    assert dark.images[0]['currentSrc'].endswith('/fig.dark.png')
    # The page background is #ffffff in light mode and #101010 in dark mode.
    assert image_luminance(read_screenshot(light.screenshot)) > 0.8
    assert image_luminance(read_screenshot(dark.screenshot)) < 0.2


def test_harness_catches_a_broken_image(browser: Chromium, tiny_site: Path) -> None:
    report = browser.open(tiny_site / 'broken.html', tiny_site / 'broken.png', height=400)
    assert [img['src'] for img in report.broken_images] == ['missing.png']
    # The failed load also reaches the browser's error log.
    assert any('missing.png' in error for error in report.errors), report.errors
    with pytest.raises(AssertionError, match='broken images'):
        assert_page_clean(report)


def test_harness_catches_a_console_error(browser: Chromium, tiny_site: Path) -> None:
    report = browser.open(tiny_site / 'console.html', tiny_site / 'console.png', height=400)
    assert report.errors == ['console.error: boom from console']
    with pytest.raises(AssertionError, match='errors in the page'):
        assert_page_clean(report)


def test_harness_catches_an_uncaught_exception(browser: Chromium, tiny_site: Path) -> None:
    report = browser.open(tiny_site / 'exception.html', tiny_site / 'exception.png', height=400)
    assert len(report.errors) == 1
    assert 'kaboom uncaught' in report.errors[0]
    with pytest.raises(AssertionError, match='errors in the page'):
        assert_page_clean(report)
