"""A search's report.html: its interactive figures render offline in Chromium, and hovering a trial shows it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ex_color.config import load_experiment
from ex_color.search import run_search
from ex_color.vis.report import write_report
from tests.browser import Chromium, assert_page_clean
from tests.searching import QUICK_SEARCH, ex29_searching


@pytest.fixture(scope='module')
def searched(tmp_path_factory) -> Path:
    experiment = ex29_searching(tmp_path_factory.mktemp('exp') / 'exp', QUICK_SEARCH, evaluations=['ablated'])
    out = tmp_path_factory.mktemp('search') / 'search'
    run_search(load_experiment(experiment), trials=4, batch=2, steps=30, out=out, progress=False)
    return out


def test_the_report_holds_each_section_and_the_winner(searched):
    page = write_report(searched).read_text()  # `ex-color report` finds a search by its search.json
    for anchor in ('id="winner"', 'id="pareto"', 'id="history"', 'id="dopesheet"', 'id="experiment"'):
        assert anchor in page, anchor
    winner = int(pd.read_csv(searched / 'finalists.csv').query('winner')['trial'].iloc[0])
    assert f'Winner: trial {winner}' in page
    assert '<script src="plotly.min.js"></script>' in page
    assert (searched / 'plotly.min.js').stat().st_size > 1_000_000  # the whole library, for an offline page


def test_hovering_a_trial_on_the_pareto_plot_shows_its_parameters(browser: Chromium, searched, tmp_path):
    report = write_report(searched)
    assert_page_clean(browser.open(report, tmp_path / 'search.png'))
    trials = pd.read_csv(searched / 'trials.csv')
    context = browser.browser.new_context(viewport={'width': 1280, 'height': 1600})
    try:
        page = context.new_page()
        page.goto(report.resolve().as_uri(), wait_until='load')
        points = page.locator('#plot-pareto .scatterlayer .point')
        assert points.count() == (trials['state'] == 'complete').sum()
        points.first.hover(force=True)
        hover = page.locator('#plot-pareto .hoverlayer .hovertext').first
        hover.wait_for(timeout=10_000)
        text = hover.text_content() or ''
    finally:
        context.close()
    shown = int(text.split('trial ')[1].split('reg-anchor')[0])
    row = trials.set_index('trial').loc[shown]
    assert f'reg-anchor@1000: {row["reg-anchor@1000"]:.4g}' in text
    assert f'ablated_selectivity_r2: {row["ablated_selectivity_r2"]:.4g}' in text
