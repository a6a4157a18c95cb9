"""The high-level Python API, for a notebook: load an experiment, then run, sweep or compare it in one line each.

    import ex_color
    exp = ex_color.load('experiments/ex-2.9', overrides=['labels.red.power=5'])
    run = exp.run(seed=0)          # trains (or reopens) runs/ex-2.9/seed-0, draws its report
    run.figures                    # one row per evaluation: mse_max, mse_median, selectivity_r2, targets
    run.model, run.variants        # the trained model, and its edited variants (ablated, pruned, ...)
    run.show()                     # the report's headline figures, inline

Each call does what the command of the same name does and writes the same directory, so a
notebook and the shell can take turns. A cell run again reopens the finished work instead of
training again (the directory's fingerprint must match: other overrides need another `out`).
The seed's lower-level API (`TrainingModule`, `ablate`, ...) is unchanged underneath.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn
from torch.utils.data import DataLoader

from ex_color.compare import CompareResult, run_compare
from ex_color.config import Experiment, build_model, build_regularizers, load_experiment, training_data
from ex_color.experiment import Engine, run_experiment
from ex_color.loss import RegularizerConfig
from ex_color.rundir import METRICS_FILE, RunResults, load_run, read_metrics
from ex_color.runner import parse_seeds
from ex_color.sweep import SweepResult, run_sweep
from ex_color.temporal import Dopesheet
from ex_color.text_compare import TextCompareResult
from ex_color.variants import Variant, build_variants

log = logging.getLogger(__name__)

FIGURES_INDEX = Path('figures') / 'index.json'


def load(path: str | Path, overrides: Sequence[str] | str = ()) -> ExperimentHandle:
    """An experiment directory (or its experiment.toml), validated, with `overrides` (`PATH=VALUE`, as `--set`)."""
    return ExperimentHandle(load_experiment(path, strict=True, overrides=overrides))


def _seeds(seeds: str | int | Sequence[int]) -> list[int]:
    if isinstance(seeds, str):
        return parse_seeds(seeds)
    if isinstance(seeds, int):
        return list(range(seeds))
    return [int(s) for s in seeds]


@dataclass
class ExperimentHandle:
    """A loaded experiment; each method writes (or reopens) the directory its command would."""

    experiment: Experiment

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def dopesheet(self) -> Dopesheet:
        """The schedule (with overrides applied, unused columns dropped)."""
        return self.experiment.dopesheet

    def model(self) -> nn.Module:
        """A fresh, untrained model as the file declares it (seed torch first to repeat its initial weights)."""
        return build_model(self.experiment.config)

    def regularizers(self) -> list[RegularizerConfig]:
        """The file's regularizers, ready for `TrainingModule`."""
        return build_regularizers(self.experiment.config)

    def loader(self) -> DataLoader:
        """The file's training colours as Lightning batches `(colours [B, 3], labels {name: [B]})`, drawn as the
        seed draws them (weighted, with replacement; seed torch first to repeat them)."""
        if self.experiment.config.is_text:
            raise ValueError(
                f'{self.name} is a text experiment: its batches are windows of the corpus, drawn by '
                'ex_color.config.text_data(config).batch(generator)'
            )
        return training_data(self.experiment.config).loader()

    def run(
        self,
        seed: int | None = None,
        *,
        steps: int | None = None,
        out: str | Path | None = None,
        engine: Engine = 'fast',
        report: bool = True,
        progress: bool | None = None,
        device: str = 'cpu',
        compile: bool | None = None,
    ) -> RunView:
        """Train and evaluate one seed (default: the file's), as `ex-color run`; a finished run in `out` is reopened,
        an interrupted one continued. `steps`: train only the first N steps of the schedule. `compile`: train with the
        compiled step (None: the command's default, see `ex_color.compiling`)."""
        result = run_experiment(
            self.experiment,
            seed=seed,
            out=out,
            engine=engine,
            steps=steps,
            resume=True,
            progress=progress,
            device=device,
            compile=compile,
        )
        if report and (result.trained or not (result.directory / FIGURES_INDEX).is_file()):
            _draw_report(result.directory)  # a reopened run keeps the report it has
        return RunView.open(result.directory, self.experiment)

    def sweep(
        self,
        seeds: str | int | Sequence[int],
        *,
        steps: int | None = None,
        out: str | Path | None = None,
        chunk: int | None = None,
        ray: str | None = None,
        report: bool = True,
        progress: bool | None = None,
        device: str = 'cpu',
        compile: bool | None = None,
    ) -> SweepView:
        """Train and evaluate many seeds, as `ex-color sweep`: `seeds` is '0-59', a count (range(n)) or a list."""
        return SweepView(self._seeds_job(run_sweep, seeds, steps, out, chunk, ray, report, progress, device, compile))

    def compare(
        self,
        seeds: str | int | Sequence[int],
        *,
        steps: int | None = None,
        out: str | Path | None = None,
        chunk: int | None = None,
        ray: str | None = None,
        report: bool = True,
        progress: bool | None = None,
        device: str = 'cpu',
        compile: bool | None = None,
    ) -> CompareView:
        """Prepared against control models with post-hoc erasures, as `ex-color compare`."""
        return CompareView(
            self._seeds_job(run_compare, seeds, steps, out, chunk, ray, report, progress, device, compile)
        )

    def search(
        self,
        trials: int,
        *,
        batch: int | None = None,
        sampler: str = 'tpe',
        steps: int | None = None,
        out: str | Path | None = None,
        ray: str | None = None,
        report: bool = True,
        progress: bool | None = None,
        device: str = 'cpu',
        compile: bool | None = None,
    ) -> SearchView:
        """Search the experiment's [search] parameters, as `ex-color search` (a rerun continues the search)."""
        from ex_color.search import run_search

        result = run_search(
            self.experiment,
            trials=trials,
            batch=batch,
            sampler=sampler,
            steps=steps,
            out=out,
            ray=ray,
            progress=progress,
            device=device,
            compile=compile,
        )
        if report:
            _draw_report(result.directory)
        return SearchView(result)

    def _seeds_job(
        self,
        job: Callable[..., Any],
        seeds: str | int | Sequence[int],
        steps: int | None,
        out: str | Path | None,
        chunk: int | None,
        ray: str | None,
        report: bool,
        progress: bool | None,
        device: str,
        compile: bool | None,
    ) -> Any:
        """`run_sweep` or `run_compare` on these seeds, then the report if asked; the job's result."""
        result = job(
            self.experiment,
            _seeds(seeds),
            out=out,
            chunk=chunk,
            steps=steps,
            ray=ray,
            progress=progress,
            device=device,
            compile=compile,
        )
        if report:
            _draw_report(result.directory)
        return result


def _draw_report(directory: Path) -> Path:
    from ex_color.vis.report import write_report

    return write_report(directory)


@dataclass
class RunView:
    """A finished run: its directory, trained model, edited variants and figures."""

    directory: Path
    results: RunResults
    model: nn.Module
    variants: dict[str, Variant] = field(repr=False)

    @classmethod
    def open(cls, directory: str | Path, experiment: Experiment | None = None) -> RunView:
        """A finished run directory read back (its model checked against the SHA-256 its manifest recorded)."""
        run = load_run(directory)
        config = (experiment or run.experiment).config
        return cls(run.directory, run.results, run.model, build_variants(run.model, config))

    @property
    def figures(self) -> pd.DataFrame:
        """One row per evaluation (baseline first): mse_max, mse_median, selectivity_r2 and its targets (for text,
        see `evaluations_frame`)."""
        return evaluations_frame(self.results)

    @property
    def metrics(self) -> pd.DataFrame:
        """The training metrics (metrics.csv): step, lr, train_loss, train_<term>, weight_<name>."""
        return read_metrics(self.directory / METRICS_FILE)

    def show(self, *, all_figures: bool = False) -> list[Path]:
        """Display the report's headline figures (every figure with `all_figures`) inline; returns their paths."""
        return show_figures(self.directory, headline=not all_figures)


@dataclass
class SweepView:
    """A finished sweep: `table` (sweep.csv), the best seed and its run."""

    result: SweepResult

    @property
    def directory(self) -> Path:
        return self.result.directory

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    @property
    def best_seed(self) -> int:
        return self.result.best_seed

    def best(self) -> RunView:
        """The best seed's run (the sweep's `best/` directory)."""
        return RunView.open(self.directory / 'best')

    def show(self) -> list[Path]:
        return show_figures(self.directory, headline=False)


@dataclass
class CompareView:
    """A finished comparison: `summary` (summary.csv), `table` (compare.csv) and `facts` (compare.json)."""

    result: CompareResult | TextCompareResult

    @property
    def directory(self) -> Path:
        return self.result.directory

    @property
    def summary(self) -> pd.DataFrame:
        return self.result.summary

    @property
    def table(self) -> pd.DataFrame:
        return self.result.table

    @property
    def facts(self) -> Any:
        return self.result.facts

    def show(self) -> list[Path]:
        return show_figures(self.directory, headline=False)


@dataclass
class SearchView:
    """A finished search: `trials` (trials.csv), `finalists` (their fresh-seed figures), `validation` (per seed),
    the `winner`'s trial number and `best()`, the winning schedule as an experiment to run."""

    result: Any
    """`ex_color.search.SearchResult`."""

    @property
    def directory(self) -> Path:
        return self.result.directory

    @property
    def trials(self) -> pd.DataFrame:
        return self.result.trials

    @property
    def finalists(self) -> pd.DataFrame:
        return self.result.finalists

    @property
    def validation(self) -> pd.DataFrame:
        return self.result.validation

    @property
    def winner(self) -> int | None:
        return self.result.summary.winner

    def best(self) -> ExperimentHandle:
        """The winner's experiment directory (`best/`), loaded: `.run(seed=K)` trains it on seed K."""
        return load(self.directory / 'best')


def evaluations_frame(results: RunResults) -> pd.DataFrame:
    """A run's evaluations as a table indexed by name (for text: the concept's and the worst other class's ratio,
    the probability on the concept, and each class's cross-entropy and ratio)."""
    if results.is_text:
        return pd.DataFrame.from_dict(
            {
                name: {**e.row(''), 'collateral_class': e.collateral_class, 'targets': ', '.join(e.targets)}  # type: ignore[union-attr]
                for name, e in results.evaluations.items()
            },
            orient='index',
        ).rename(columns=lambda c: c.removeprefix('_'))
    rows = {
        name: {
            'mse_max': e.mse_max,
            'mse_median': e.mse_median,
            'selectivity_r2': e.selectivity_r2,
            'targets': ', '.join(e.targets),
        }
        for name, e in results.evaluations.items()
    }
    return pd.DataFrame.from_dict(rows, orient='index')


def show_figures(directory: str | Path, *, headline: bool = True) -> list[Path]:
    """Display a report's figures (light theme) in a notebook, from its figures/index.json; their paths.

    Outside IPython nothing is displayed and the paths are only returned. A directory whose report
    was not drawn (`report=False`, `--no-report`) is drawn first.
    """
    directory = Path(directory)
    if not (directory / FIGURES_INDEX).is_file():
        _draw_report(directory)
    index = json.loads((directory / FIGURES_INDEX).read_text())
    entries = index.get('headline') if headline and index.get('headline') else index['figures']
    paths = [directory / entry['light'] for entry in entries]
    try:
        from IPython.display import Image, display
    except ImportError:
        log.info('IPython is not installed: not displaying %d figures', len(paths))
        return paths
    for path in paths:
        display(Image(filename=str(path)))
    return paths


__all__ = [
    'CompareView',
    'ExperimentHandle',
    'RunView',
    'SweepView',
    'evaluations_frame',
    'load',
    'show_figures',
]
