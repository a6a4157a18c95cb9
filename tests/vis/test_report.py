"""report.html for runs and sweeps: every figure in both themes, the tables match the saved results, offline."""

from __future__ import annotations

import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest
import torch

from ex_color.model import CNColorMLP
from ex_color.vis.page import error_shade
from ex_color.vis.report import (
    ReportError,
    dopesheet_table,
    toml_tables,
    write_report,
    write_run_report,
    write_sweep_report,
)
from tests.browser import Chromium, assert_page_clean, image_luminance, read_screenshot
from tests.vis.conftest import EX29

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
RUN_FIGURES = {
    'true-colors',
    'colors-baseline',
    'error-baseline',
    'latents-baseline',
    'colors-ablated',
    'error-ablated',
    'latents-ablated',
    'selectivity-ablated',
    'colors-suppressed',
    'error-suppressed',
    'latents-suppressed',
    'selectivity-suppressed',
    'dopesheet',
    'training-curves',
}
"""Ex 2.9's figures; 'pruned' reconstructs exactly as 'ablated' does, so it has none of its own."""


class PageParser(HTMLParser):
    """Collects what the tests look at: images, picture sources, links, table cells, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.sources: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.scripts = 0
        self.stylesheets = 0
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == 'img':
            self.images.append(attributes)
        elif tag == 'source':
            self.sources.append(attributes)
        elif tag == 'a' and attributes.get('href'):
            self.links.append(attributes['href'] or '')
        elif tag == 'script':
            self.scripts += 1
        elif tag == 'link':
            self.stylesheets += 1
        elif tag == 'td':
            self._in_cell = True
            self.cells.append('')

    def handle_endtag(self, tag: str) -> None:
        if tag == 'td':
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data.strip()


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    return parser


def corner_luminance(path: Path) -> float:
    """Luminance of a PNG's top-left pixel: the figure background."""
    r, g, b = matplotlib.image.imread(path)[0, 0, :3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# Helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(('error', 'shade'), [(1e-5, 0.0), (1e-3, 0.4), (0.1, 0.8), (1.0, 1.0), (0.0, 0.0), (5.0, 1.0)])
def test_error_shade_is_log_linear_between_1e5_and_1(error, shade):
    # log10(1e-3) = -3 → (−3 + 5) / 5 = 0.4; log10(0.1) = −1 → 0.8.
    assert error_shade(error) == pytest.approx(shade)


def test_error_shade_of_nan_is_no_shade():
    assert error_shade(float('nan')) == 0.0


def test_toml_tables_give_a_table_per_section_and_a_row_per_list_entry():
    text = """
[experiment]
name = "x"
seed = 3

[[regularizers]]
name = "a"
layers = ["bottleneck"]
labels = { red = 1.0 }

[[regularizers]]
name = "b"
validation = true
"""
    tables = dict(toml_tables(text))
    assert tables['experiment'].columns == ['key', 'value']
    assert tables['experiment'].rows == [['name', 'x'], ['seed', '3']]
    assert tables['regularizers'].columns == ['name', 'layers', 'labels', 'validation']
    assert tables['regularizers'].rows == [['a', '[bottleneck]', 'red = 1.0', ''], ['b', '', '', 'true']]


def test_dopesheet_table_puts_the_resolved_step_beside_each_row():
    text = 'STEP,PHASE,lr\n0,Train,0.1\n+10,,0.2\n100,,0\n'
    table = dopesheet_table(text, [0, 10, 100])
    assert table.columns == ['resolved step', 'STEP', 'PHASE', 'lr']
    assert table.rows == [['0', '0', 'Train', '0.1'], ['10', '+10', '', '0.2'], ['100', '100', '', '0']]


# A run's report -------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def figure_index(short_run_report: Path) -> list[dict[str, str]]:
    return json.loads((short_run_report.parent / 'figures' / 'index.json').read_text())['figures']


def test_run_report_draws_every_figure_in_light_and_dark(short_run_report, figure_index):
    run = short_run_report.parent
    assert short_run_report == run / 'report.html'
    assert {f['name'] for f in figure_index} == RUN_FIGURES
    for figure in figure_index:
        light, dark = run / figure['light'], run / figure['dark']
        assert light.name == f'{figure["name"]}.png'
        assert dark.name == f'{figure["name"]}.dark.png'
        for path in (light, dark):
            assert path.read_bytes()[:8] == PNG_SIGNATURE, path
        # The themes differ where it shows: a white background and a near-black one.
        assert corner_luminance(light) > 0.9 > 0.2 > corner_luminance(dark), figure['name']
        assert figure['title'], figure['name']
        assert figure['title'] in figure['alt'], figure['name']
    assert sorted(p.name for p in (run / 'figures').glob('*.png')) == sorted(
        name for f in figure_index for name in (Path(f['light']).name, Path(f['dark']).name)
    )


def test_alt_texts_describe_what_the_figures_show(figure_index):
    alt = {f['name']: f['alt'] for f in figure_index}
    assert 'Y-axis: mean square error' in alt['error-ablated']
    assert 'X-axis: similarity to red' in alt['selectivity-ablated']
    assert 'Dimension 0 is zero for every colour' in alt['latents-ablated']
    assert 'Dimension 0 is zero' not in alt['latents-baseline']
    assert 'training step from 0 to 3000' in alt['dopesheet']  # the dopesheet, not just the steps trained
    assert 'from 0 to 199' in alt['training-curves']  # 200 steps: 0 … 199
    assert 'reg-anchor' in alt['dopesheet']
    assert 'reg-planar-v' not in alt['dopesheet']  # declared unused: no regularizer reads it, so it is not drawn
    assert 'goes from 0 to 0' not in alt['training-curves']  # a sparse term says where it applied instead


def test_run_report_page_shows_each_figure_with_its_dark_twin(short_run_report, figure_index):
    page = parse(short_run_report)
    by_light = {f['light']: f for f in figure_index}
    assert {img['src'] for img in page.images} == set(by_light)
    for img in page.images:
        assert img['alt'] == by_light[img['src']]['alt']
    assert {s['srcset'] for s in page.sources} == {f['dark'] for f in figure_index}
    assert all(s['media'] == '(prefers-color-scheme: dark)' for s in page.sources)
    # Headline figures come first: the first evaluation's colours and error, then the baseline latents.
    assert [img['src'] for img in page.images[:3]] == [
        'figures/colors-ablated.png',
        'figures/error-ablated.png',
        'figures/latents-baseline.png',
    ]


def test_run_report_is_offline(short_run_report):
    page = parse(short_run_report)
    html = short_run_report.read_text()
    assert page.scripts == 0
    assert page.stylesheets == 0
    assert 'http://' not in html and 'https://' not in html
    assert all(link.startswith('#') for link in page.links)


def test_named_colour_table_matches_results_json(short_run_report):
    results = json.loads((short_run_report.parent / 'results.json').read_text())
    evaluations = results['evaluations']
    cells = parse(short_run_report).cells
    width = 1 + len(evaluations)
    # The named-colour table's first row (red also names the summary table's targets).
    start = next(i for i, c in enumerate(cells) if c == 'red' and cells[i + width : i + width + 1] == ['orange'])
    for i, colour in enumerate(evaluations['baseline']['named_colors']):
        row = cells[start + i * width : start + (i + 1) * width]
        assert row[0] == colour
        assert row[1:] == [f'{e["named_colors"][colour]:.2g}' for e in evaluations.values()]
    html = short_run_report.read_text()
    assert 'pruned reconstructs every test colour as ablated does' in html
    # Each evaluation's target cell is outlined: red, once per evaluation (ablated, pruned, suppressed).
    assert html.count('title="target of ') == len(evaluations) - 1
    assert 'title="target of ablated">' in html


def test_run_report_shows_the_experiment_and_dopesheet(short_run_report):
    cells = parse(short_run_report).cells
    assert 'reg-anchor' in cells and 'angular-anchor' in cells  # the regularizers table
    header, *rows = (EX29 / 'dopesheet.csv').read_text().splitlines()
    width = 1 + len(header.split(','))  # the resolved step, then the columns as written
    start = cells.index('Train') - 2
    table = [cells[start + i * width : start + (i + 1) * width] for i in range(len(rows))]
    assert [row[1:] for row in table] == [row.split(',') for row in rows]
    assert [row[0] for row in table] == ['0', '10', '500', '1000', '2800', '3000']


def test_report_is_redrawn_from_the_saved_run_without_training(short_run, short_run_report, tmp_path):
    copy = tmp_path / 'run'
    shutil.copytree(short_run, copy)
    (copy / 'figures' / 'stale.png').write_bytes(b'old')
    kept = {name: (copy / name).read_bytes() for name in ('model.pt', 'metrics.csv', 'results.json')}

    assert write_report(copy) == copy / 'report.html'

    assert {name: (copy / name).read_bytes() for name in kept} == kept
    assert not (copy / 'figures' / 'stale.png').exists()
    assert (copy / 'report.html').read_bytes() == short_run_report.read_bytes()
    for png in (short_run / 'figures').glob('*.png'):
        assert (copy / 'figures' / png.name).read_bytes() == png.read_bytes(), png.name


def test_report_of_a_directory_that_is_no_run_names_what_is_missing(short_run, tmp_path):
    with pytest.raises(ReportError, match='no such directory'):
        write_report(tmp_path / 'absent')
    with pytest.raises(ReportError, match='neither a finished run'):
        write_report(tmp_path)
    broken = tmp_path / 'broken'
    shutil.copytree(short_run, broken)
    (broken / 'model.pt').unlink()
    with pytest.raises(ReportError, match=r'broken: no model\.pt'):
        write_run_report(broken)
    shutil.copy(short_run / 'metrics.csv', broken / 'model.pt')
    with pytest.raises(ReportError, match=r'model\.pt: cannot load'):
        write_run_report(broken)


def test_a_model_from_another_run_is_refused_before_any_figure_is_drawn(short_run, tmp_path):
    copy = tmp_path / 'run'
    shutil.copytree(short_run, copy)
    torch.manual_seed(1)
    torch.save(CNColorMLP(5, n_nonlinear=2).state_dict(), copy / 'model.pt')  # loads, but another model
    shutil.rmtree(copy / 'figures', ignore_errors=True)
    with pytest.raises(ReportError, match=r'model\.pt: not the file that was written with this directory .*SHA-256'):
        write_run_report(copy)
    assert not (copy / 'figures').exists()
    manifest = json.loads((copy / 'manifest.json').read_text())
    assert manifest['sha256'] == {'model.pt': hashlib.sha256((short_run / 'model.pt').read_bytes()).hexdigest()}


# A sweep's report -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_report_links_to_its_best_run(short_sweep):
    result = short_sweep
    path = result.directory / 'report.html'
    page = parse(path)
    assert 'best/report.html' in page.links
    assert (result.directory / 'best' / 'report.html').is_file()
    best = path.read_text().split('<h2 id="best">')[1].split('</p>')[0]
    assert 'ablated aims at red' in best and ' removes ' not in best  # a sweep measures no removal rule here
    assert 'control-' not in best  # a sweep trains no control, so it names none of the control's methods
    sources = {img['src'] for img in page.images}
    assert 'figures/sweep-boxes.png' in sources
    assert 'best/figures/colors-ablated.png' in sources
    for img in page.images:
        assert (result.directory / img['src']).is_file(), img['src']
        assert (result.directory / img['src'].replace('.png', '.dark.png')).is_file(), img['src']
        assert img['alt']
    boxes = next(img for img in page.images if img['src'] == 'figures/sweep-boxes.png')
    assert f'best seed {result.best_seed}' in boxes['alt']
    assert '3 seeds' in boxes['alt']
    # One row per seed in the seeds table, the best one marked.
    assert page.cells.count('yes (best)') + page.cells.count('(best)') == 1
    assert write_report(result.directory) == path


def test_sweep_report_without_a_best_run_and_with_damaged_files(short_run, tmp_path):
    sweep = tmp_path / 'sweep'
    sweep.mkdir()
    for name in ('config.toml', 'dopesheet.csv'):
        shutil.copy(short_run / name, sweep / name)
    (sweep / 'sweep.csv').write_text(
        'seed,ablated_selectivity_r2,val_recon,val_anchor\n0,0.5,0.01,0.1\n1,0.7,0.02,0.2\n'
    )
    summary = {'experiment': 'ex-2.9', 'title': 'T', 'seeds': [0, 1], 'steps': 200, 'chunk': 2}
    (sweep / 'sweep.json').write_text(json.dumps(summary | {'best_seed': 1, 'pareto_seeds': [0, 1]}))

    page = parse(write_sweep_report(sweep))
    assert [img['src'] for img in page.images] == ['figures/sweep-boxes.png', 'figures/sweep-pareto.png']
    assert 'best/report.html' not in page.links  # no best/ run directory here

    (sweep / 'sweep.json').write_text('{')
    with pytest.raises(ReportError, match=r'sweep\.json: not valid JSON'):
        write_report(sweep)
    (sweep / 'sweep.json').write_text(json.dumps(summary))
    with (sweep / 'dopesheet.csv').open('a') as f:
        f.write('garbage,,,,,,,,,\n')
    with pytest.raises(ReportError, match=r'dopesheet\.csv, row 7'):
        write_report(sweep)


# In headless Chromium (here, beside the run and sweep they share, so a worker trains them once) ---------


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
    assert image_luminance(dark_rgb) < 0.35 < 0.65 < image_luminance(light_rgb), (
        image_luminance(dark_rgb),
        image_luminance(light_rgb),
    )


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
    assert (
        image_luminance(read_screenshot(dark.screenshot))
        < 0.35
        < 0.65
        < image_luminance(read_screenshot(light.screenshot))
    )
