"""A run's report.html in headless Chromium: it renders, every image loads, nothing errs, dark mode works.

The first tests prove the harness on tiny pages written here (a clean page, a broken image,
a console error, an uncaught exception), so the report test is known to be able to fail.
Without Chromium the tests skip, except under CI (env CI set), where a missing browser fails
(the `browser` fixture in conftest.py; Playwright drives Debian's chromium, see tests/browser.py).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from tests.browser import Chromium, assert_page_clean

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

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


def luminance(rgb: np.ndarray) -> float:
    """Mean Rec. 709 luminance of an `[H, W, 3]` image in [0, 1]."""
    return float((rgb @ np.array([0.2126, 0.7152, 0.0722])).mean())


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
    assert luminance(read_screenshot(light.screenshot)) > 0.8
    assert luminance(read_screenshot(dark.screenshot)) < 0.2


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


def test_run_report_renders_in_chromium(browser: Chromium, short_run_report: Path, tmp_path: Path) -> None:
    run_report = short_run_report
    light = browser.open(run_report, tmp_path / 'report-light.png', 'light', height=2000)
    dark = browser.open(run_report, tmp_path / 'report-dark.png', 'dark', height=2000)

    for report in (light, dark):
        assert_page_clean(report)
        # Baseline and ablated colours, error series and latents, the dopesheet and the training curves, at least.
        assert len(report.images) >= 8, [img['src'] for img in report.images]
        assert all((img['alt'] or '').strip() for img in report.images), 'every figure needs an alt text'
        # Figures are local files of the run directory.
        assert all(img['currentSrc'].startswith('file://') for img in report.images)
    # prefers-color-scheme picks the dark PNG of every figure, and only in dark mode.
    assert not [img['currentSrc'] for img in light.images if img['currentSrc'].endswith('.dark.png')]
    assert not [img['currentSrc'] for img in dark.images if not img['currentSrc'].endswith('.dark.png')]
    assert sorted(img['src'] for img in light.images) == sorted(img['src'] for img in dark.images)

    light_rgb = read_screenshot(light.screenshot)
    dark_rgb = read_screenshot(dark.screenshot)
    assert light.screenshot.stat().st_size > 20_000
    assert dark.screenshot.stat().st_size > 20_000
    # Dark mode is dark overall, light mode light.
    assert luminance(dark_rgb) < 0.35 < 0.65 < luminance(light_rgb), (luminance(dark_rgb), luminance(light_rgb))


def test_sweep_report_renders_in_chromium(browser: Chromium, short_sweep, tmp_path: Path) -> None:
    report_path = short_sweep.directory / 'report.html'
    light = browser.open(report_path, tmp_path / 'sweep-light.png', 'light', height=1500)
    dark = browser.open(report_path, tmp_path / 'sweep-dark.png', 'dark', height=1500)
    for report in (light, dark):
        assert_page_clean(report)
        # The box plots and the best run's headline figures (from best/figures/).
        sources = sorted(img['src'] for img in report.images)
        assert 'figures/sweep-boxes.png' in sources
        assert sum(src.startswith('best/figures/') for src in sources) == 3
    assert all(img['currentSrc'].endswith('.dark.png') for img in dark.images)
    assert luminance(read_screenshot(dark.screenshot)) < 0.35 < 0.65 < luminance(read_screenshot(light.screenshot))
