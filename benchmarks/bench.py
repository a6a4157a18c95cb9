"""Speed of the trainers and of evaluation on the Ex 2.9 workload, and of the text engine on lm-digits' model,
measured in one process.

Run with `make bench` (or `python benchmarks/bench.py [--steps N] [--only text]`). Prints each figure
and the ratios between them, and writes `benchmarks/results.json`. Numbers from one run
on one machine: compare ratios, not absolute speeds across machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ex_color.compare import compare_chunk
from ex_color.config import (
    build_model,
    build_regularizers,
    load_experiment,
    text_data,
    training_data,
)
from ex_color.data import named_colors_rgb
from ex_color.evaluation import error_cube, evaluate, evaluate_variants, selectivity_grid
from ex_color.experiment import run_experiment, train_chunk, train_lightning_seed
from ex_color.inference import infer
from ex_color.loss import total_loss
from ex_color.model import forward_hooks
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.schedule import TrainingSchedule
from ex_color.training.text import train_text_ensemble
from ex_color.trials import train_trials
from ex_color.variants import build_variants
from ex_color.vis.report import write_run_report
from ex_color.vis.run_figures import default_workers

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / 'experiments' / 'ex-2.9'
TEXT_EXPERIMENT = ROOT / 'experiments' / 'lm-digits'
TEXT_STEPS = 60
TEXT_ROUNDS = 3
ENSEMBLE_SIZES = (8, 32, 60)
CHUNK_SEEDS = 20
"""Seeds in the sweep and compare chunks (the acceptance comparison's size)."""


def fast_steps_per_second(
    experiment, seeds: list[int], steps: int, device: str = 'cpu', *, compile: bool = False
) -> float:
    """Ensemble steps per second of the fast engine (multiply by S for model-steps); compiled, after a first short
    call that compiles (its time is `compile_seconds`), as a sweep's later chunks and a search's later batches run."""
    config = experiment.config
    regularizers = build_regularizers(config)
    schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
    data = training_data(config)
    options = EngineOptions(progress=False, device=device, compile=compile)
    if compile:
        train_ensemble(init_models(lambda: build_model(config), seeds), seeds, data, regularizers, schedule, steps=2,
                       options=options)  # fmt: skip
    models = init_models(lambda: build_model(config), seeds)
    started = time.perf_counter()
    train_ensemble(models, seeds, data, regularizers, schedule, steps=steps, options=options)
    return steps / (time.perf_counter() - started)


def plain_loop_steps_per_second(experiment, steps: int) -> float:
    """The floor: the eager loop a researcher writes in ten minutes, one model, on one thread (its fastest).

    The same model, batches of the same size drawn the same way, the same labels, schedule, losses
    (`total_loss`, activations captured with forward hooks) and Adam; no checkpoints, no logging.
    """
    config = experiment.config
    regularizers = build_regularizers(config)
    schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
    data = training_data(config)
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(config).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=float(schedule.lr[0]))
        generator = torch.Generator().manual_seed(0)
        captured: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        with forward_hooks(model, layers, captured.__setitem__):
            for step in range(steps):
                index = torch.multinomial(data.weights, data.batch_size, replacement=True, generator=generator)
                colours = data.colors[index]
                labels = {
                    name: (torch.rand(data.batch_size, generator=generator) < p[index]).float()
                    for name, p in data.label_probabilities.items()
                }
                for group in optimizer.param_groups:
                    group['lr'] = float(schedule.lr[step])
                recon = (model(colours) - colours).square().mean()
                loss, _ = total_loss(recon, regularizers, captured, labels, schedule.weights_at(step))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return steps / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def text_engine_steps_per_second(experiment, steps: int) -> float:
    """`ex-color run`'s text engine on the experiment's model and batch: steps per second, one model, no files."""
    config = experiment.config
    regularizers = build_regularizers(config)
    schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
    data = text_data(config)
    models = init_models(lambda: build_model(config), [0])
    started = time.perf_counter()
    train_text_ensemble(models, [0], data, regularizers, schedule, steps=steps, options=EngineOptions(progress=False))
    return steps / (time.perf_counter() - started)


def text_plain_loop_steps_per_second(experiment, steps: int) -> float:
    """The floor for text: the loop a researcher writes, the same model, batch, labels, losses and Adam, on the same
    threads; windows drawn with `torch.randint`, activations captured with forward hooks; no logging."""
    config = experiment.config
    regularizers = build_regularizers(config)
    schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
    data = text_data(config)
    layers = sorted({layer for r in regularizers for layer in r.layer_affinities})
    train, T, B = data.corpus.train, data.context, data.batch_size
    members = {name: data.members(label.chars) for name, label in data.labels.items()}
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=float(schedule.lr[0]))
    generator = torch.Generator().manual_seed(0)
    captured: dict[str, torch.Tensor] = {}
    offsets = torch.arange(T + 1)
    started = time.perf_counter()
    with forward_hooks(model, layers, lambda name, out: captured.__setitem__(name, out.flatten(0, -2))):
        for step in range(steps):
            window = train[torch.randint(len(train) - T, (B,), generator=generator).unsqueeze(-1) + offsets]
            x, y = window[:, :-1], window[:, 1:]
            labels = {name: chars[y].flatten() for name, chars in members.items()}
            for group in optimizer.param_groups:
                group['lr'] = float(schedule.lr[step])
            ce = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss, _ = total_loss(ce, regularizers, captured, labels, schedule.weights_at(step))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return steps / (time.perf_counter() - started)


def text_speeds(steps: int = TEXT_STEPS, rounds: int = TEXT_ROUNDS) -> dict[str, float]:
    """The text engine and the plain loop, alternated `rounds` times; each one's best round (the least disturbed)."""
    experiment = load_experiment(TEXT_EXPERIMENT)
    engine, plain = [], []
    for _ in range(rounds):
        plain.append(text_plain_loop_steps_per_second(experiment, steps))
        engine.append(text_engine_steps_per_second(experiment, steps))
    return {'engine_steps_per_s': max(engine), 'plain_loop_steps_per_s': max(plain), 'steps': steps}


def print_text(text: dict[str, float]) -> None:
    print(f'lm-digits model ({TEXT_STEPS} steps, best of {TEXT_ROUNDS}, torch threads {torch.get_num_threads()}):')
    print(f'  text engine, 1 model:        {text["engine_steps_per_s"]:8.2f} steps/s')
    print(f'  plain PyTorch loop, 1 model: {text["plain_loop_steps_per_s"]:8.2f} steps/s')
    ratio = text['engine_steps_per_s'] / text['plain_loop_steps_per_s']
    print(f'  text engine / plain loop:    {ratio:8.2f}×')
    print(f'  target text engine at least as fast as the plain loop: {"met" if ratio >= 1 else "NOT met"}')


COMPILE_PROBE = """
import sys, time
started = time.perf_counter()
from ex_color.config import build_model, build_regularizers, load_experiment, training_data
from ex_color.training.engine import EngineOptions, init_models, train_ensemble
from ex_color.training.schedule import TrainingSchedule
experiment = load_experiment(sys.argv[1])
regularizers = build_regularizers(experiment.config)
schedule = TrainingSchedule.from_dopesheet(experiment.dopesheet, regularizers)
models = init_models(lambda: build_model(experiment.config), [0])
imported = time.perf_counter()
train_ensemble(models, [0], training_data(experiment.config), regularizers, schedule, steps=2,
               options=EngineOptions(progress=False, compile=True))
print(time.perf_counter() - imported)
"""


def compile_seconds(experiment_path: Path, cache: Path | None = None) -> float:
    """Seconds a new process spends compiling the Ex 2.9 step before its first step: with an empty inductor cache
    (`cache`, a new directory: the first run on a machine) or with the usual, filled one (every later run)."""
    env = dict(os.environ)
    if cache is not None:
        env['TORCHINDUCTOR_CACHE_DIR'] = str(cache)
    done = subprocess.run(
        [sys.executable, '-c', COMPILE_PROBE, str(experiment_path)], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def lightning_steps_per_second(experiment, steps: int) -> float:
    started = time.perf_counter()
    train_lightning_seed(experiment, 0, steps, progress=False)
    return steps / (time.perf_counter() - started)


def eval_colours_per_second(experiment, repeats: int = 5) -> float:
    """Batched inference over the 552,960-colour error cube, as `evaluate` runs it."""
    model = init_models(lambda: build_model(experiment.config), [0])[0]
    colours = torch.tensor(error_cube().rgb_grid.reshape(-1, 3), dtype=torch.float32)
    infer(model, colours)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        infer(model, colours)
    return repeats * len(colours) / (time.perf_counter() - started)


def variant_colours_per_second(experiment, repeats: int = 4) -> dict[str, float]:
    """Evaluation as a sweep runs it: every variant of one Ex 2.9 model on the error cube, the named colours and
    the selectivity grid, in colours per second per variant reported (baseline, ablated, pruned, suppressed).

    'together' is `evaluate_variants` (prune = ablate not evaluated twice, shared layers computed once);
    'alone' evaluates each of the four variants by itself, as sweeps did before. The two alternate, so
    the machine's drift falls on both alike.
    """
    config = experiment.config
    model = init_models(lambda: build_model(config), [0])[0]
    variants = build_variants(model, config)
    colours = len(variants) * (
        error_cube().rgb_grid.reshape(-1, 3).shape[0] + len(named_colors_rgb()[0]) + len(selectivity_grid())
    )

    def alone() -> None:
        for v in variants.values():
            evaluate(v.model, v.interventions, v.targets)

    ways = {'together': lambda: evaluate_variants(variants), 'alone': alone}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for run in ways.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in ways.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: colours / statistics.median(times) for name, times in seconds.items()}


def chunk_seeds_per_second(experiment, seeds: list[int], steps: int) -> dict[str, float]:
    """Seeds per second, training and evaluation together, of one chunk of a sweep (the prepared model and its
    evaluations) and of a comparison (prepared and control models, every evaluation including the erasures)."""
    config, dopesheet = experiment.config, experiment.dopesheet
    rates = {}
    for name, unit in (('sweep', train_chunk), ('compare', compare_chunk)):
        started = time.perf_counter()
        unit(config, dopesheet, seeds, steps=steps, options=EngineOptions(progress=False))
        rates[name] = len(seeds) / (time.perf_counter() - started)
    return rates


def sweep_seconds(experiment_path: Path, seeds: int = 60, *, compile: bool) -> float:
    """Wall time of `ex-color sweep --no-report` of `seeds` seeds in a new process, as a user runs it: training
    (compiling included, from a filled cache), evaluation, tables and the best run."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, '-m', 'ex_color', 'sweep', str(experiment_path), '--seeds', f'0-{seeds - 1}']
        command += ['--no-report', '--out', str(Path(tmp) / 'sweep'), '--compile' if compile else '--no-compile']
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        return time.perf_counter() - started


def search_batch_against_sweep_chunk(experiment, trials: int = 60) -> dict[str, float]:
    """Seconds to train and assess a batch of `trials` search trials on one seed each (each its own schedule, from
    Ex 2.9's [search] table), and a sweep chunk of as many seeds under one schedule, measured in turn."""
    rng = random.Random(0)
    values = [
        {
            p.heading: math.exp(rng.uniform(math.log(p.low), math.log(p.high))) if p.log else rng.uniform(p.low, p.high)
            for p in experiment.config.search.parameters
        }
        for _ in range(trials)
    ]
    options = EngineOptions(progress=False)
    started = time.perf_counter()
    train_trials(experiment, values, seeds=[0], options=options)
    batch = time.perf_counter() - started
    started = time.perf_counter()
    train_chunk(
        experiment.config, experiment.dopesheet, list(range(trials)), steps=len(experiment.dopesheet), options=options
    )
    chunk = time.perf_counter() - started
    return {'trials': trials, 'batch_seconds': batch, 'sweep_chunk_seconds': chunk, 'trials_per_s': trials / batch}


def report_seconds(experiment, workers: int) -> float:
    """`write_run_report` of a short run: load, evaluate every variant, draw every figure twice, render."""
    with tempfile.TemporaryDirectory() as tmp:
        run = run_experiment(experiment, seed=0, out=Path(tmp) / 'run', steps=100, progress=False)
        started = time.perf_counter()
        write_run_report(run.directory, workers=workers)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--steps', type=int, default=None, help='steps per measurement (default: the whole schedule)')
    parser.add_argument('--out', type=Path, default=ROOT / 'benchmarks' / 'results.json')
    parser.add_argument('--only', choices=['text'], help='measure only the text engine (results.json is left as is)')
    args = parser.parse_args()
    if args.only == 'text':
        print_text(text_speeds())
        return
    logging.basicConfig(level=logging.WARNING)
    import lightning.pytorch  # it sets its loggers' levels on import: quieten them after

    for name in ('lightning.pytorch', 'lightning.fabric'):
        logging.getLogger(name).setLevel(logging.WARNING)

    experiment = load_experiment(EXPERIMENT)
    steps = args.steps or len(experiment.dopesheet)
    torch.optim.Adam(torch.nn.Linear(1, 1).parameters())  # torch imports its compiler stack on first use
    print(f'Ex 2.9 workload, {steps} steps, torch threads: {torch.get_num_threads()}', flush=True)

    with tempfile.TemporaryDirectory() as empty_cache:
        compile_cold = compile_seconds(EXPERIMENT, Path(empty_cache))
    compile_cached = compile_seconds(EXPERIMENT)
    print(f'  compiling the step:          {compile_cold:8.1f} s first on this machine, {compile_cached:.1f} s cached')
    lightning = lightning_steps_per_second(experiment, steps)
    print(f'  Lightning engine, 1 model:   {lightning:8.1f} steps/s', flush=True)
    plain = plain_loop_steps_per_second(experiment, steps)
    print(f'  plain PyTorch loop, 1 model: {plain:8.1f} steps/s (eager, one thread)', flush=True)
    fast = fast_steps_per_second(experiment, [0], steps)
    print(f'  fast engine, 1 model:        {fast:8.1f} steps/s (eager)', flush=True)
    compiled = fast_steps_per_second(experiment, [0], steps, compile=True)
    print(f'  fast engine, 1 model:        {compiled:8.1f} steps/s (compiled)', flush=True)
    ensemble, compiled_ensemble = {}, {}
    for size in ENSEMBLE_SIZES:
        seeds = list(range(size))
        ensemble[str(size)] = size * fast_steps_per_second(experiment, seeds, steps)
        compiled_ensemble[str(size)] = size * fast_steps_per_second(experiment, seeds, steps, compile=True)
        print(
            f'  ensemble, S = {size:2d}:           {ensemble[str(size)]:8.0f} model-steps/s eager, '
            f'{compiled_ensemble[str(size)]:.0f} compiled',
            flush=True,
        )
    gpu = {}  # the same on CUDA, when there is a GPU (not run where there is none)
    if torch.cuda.is_available():
        for size in (1, 60):
            gpu[str(size)] = size * fast_steps_per_second(experiment, list(range(size)), steps, device='cuda')
            print(f'  on CUDA, S = {size:2d}:            {gpu[str(size)]:8.0f} model-steps/s', flush=True)
    colours = eval_colours_per_second(experiment)
    print(f'  evaluation, one model:       {colours / 1e6:8.2f} M colours/s (infer on the error cube)', flush=True)
    variant_colours = variant_colours_per_second(experiment)
    print(
        f'  evaluation, every variant:   {variant_colours["together"] / 1e6:8.2f} M colours/s per variant '
        f'(alone: {variant_colours["alone"] / 1e6:.2f})',
        flush=True,
    )
    chunk = chunk_seeds_per_second(experiment, list(range(CHUNK_SEEDS)), steps)
    print(f'  sweep chunk, {CHUNK_SEEDS} seeds:        {chunk["sweep"]:8.2f} seeds/s (train + evaluate)', flush=True)
    print(
        f'  compare chunk, {CHUNK_SEEDS} seeds:      {chunk["compare"]:8.2f} seeds/s (prepared + control + every '
        'evaluation and erasure)',
        flush=True,
    )
    whole = steps == len(experiment.dopesheet)
    sweep = sweep_seconds(EXPERIMENT, compile=True) if whole else float('nan')
    sweep_eager = sweep_seconds(EXPERIMENT, compile=False) if whole else float('nan')
    print(f'  sweep, 60 seeds:             {sweep:8.1f} s compiled (compiling included), {sweep_eager:.1f} s eager')
    search = search_batch_against_sweep_chunk(experiment) if steps == len(experiment.dopesheet) else None
    if search is not None:
        print(
            f'  search batch, 60 trials:     {search["batch_seconds"]:8.1f} s ({search["trials_per_s"]:.2f} trials/s; '
            f'a sweep chunk of 60 seeds: {search["sweep_chunk_seconds"]:.1f} s)',
            flush=True,
        )
    report_serial = report_seconds(experiment, workers=1)
    report_parallel = report_seconds(experiment, workers=default_workers())
    print(f'  report, 1 process:           {report_serial:8.1f} s', flush=True)
    print(f'  report, {default_workers()} processes:         {report_parallel:8.1f} s', flush=True)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f'  peak RSS:                    {peak_rss_mib:8.0f} MiB')
    text = text_speeds()
    print_text(text)

    eager_by_size, compiled_by_size = {'1': fast, **ensemble}, {'1': compiled, **compiled_ensemble}
    ratios = {
        'fast_over_plain_loop': compiled / plain,
        'eager_fast_over_plain_loop': fast / plain,
        'compiled_over_lightning': compiled / lightning,
        'compiled_over_eager': {size: compiled_by_size[size] / eager_by_size[size] for size in eager_by_size},
        'sweep60_eager_over_compiled': sweep_eager / sweep,
        'fast_over_lightning': fast / lightning,
        'ensemble60_over_lightning': ensemble['60'] / lightning,
        'report_serial_over_parallel': report_serial / report_parallel,
        'compare_over_sweep_seconds': chunk['sweep'] / chunk['compare'],
        'variants_together_over_alone': variant_colours['together'] / variant_colours['alone'],
        'search_batch_over_sweep_chunk': search['batch_seconds'] / search['sweep_chunk_seconds'] if search else None,
        'text_engine_over_plain_loop': text['engine_steps_per_s'] / text['plain_loop_steps_per_s'],
    }
    print(f'  compiled / plain loop:       {ratios["fast_over_plain_loop"]:8.2f}× (eager engine: '
          f'{ratios["eager_fast_over_plain_loop"]:.2f}×)')  # fmt: skip
    for size, ratio in ratios['compiled_over_eager'].items():
        print(f'  compiled / eager, S = {size:2}:   {ratio:8.2f}×')
    print(f'  fast / Lightning:            {ratios["fast_over_lightning"]:8.2f}× (compiled: '
          f'{ratios["compiled_over_lightning"]:.2f}×)')  # fmt: skip
    print(f'  ensemble 60 / Lightning:     {ratios["ensemble60_over_lightning"]:8.2f}×')
    print(f'  report 1 / {default_workers()} processes:      {ratios["report_serial_over_parallel"]:8.2f}×')
    print(f'  compare / sweep time per seed: {ratios["compare_over_sweep_seconds"]:6.2f}×')
    print(f'  variants together / alone:   {ratios["variants_together_over_alone"]:8.2f}×')
    if search is not None:
        print(f'  search batch / sweep chunk:  {ratios["search_batch_over_sweep_chunk"]:8.2f}×')
    targets = {
        'evaluation >= 1e7 colours/s (per variant, as a sweep evaluates)': variant_colours['together'] >= 1e7,
        '60-seed sweep <= 60 s': sweep <= 60,
        'fast >= 2.5x Lightning': ratios['fast_over_lightning'] >= 2.5,
        'compiled >= 2x the plain loop (one model)': ratios['fast_over_plain_loop'] >= 2,
        'compiled >= 1.5x eager (60 seeds)': ratios['compiled_over_eager']['60'] >= 1.5,
        'a batch of 60 trials within 10% of a 60-seed sweep chunk': search is not None
        and ratios['search_batch_over_sweep_chunk'] <= 1.1,
    }
    for target, met in targets.items():
        print(f'  target {target}: {"met" if met else "NOT met"}')
    results = {
        'steps': steps,
        'torch_threads': torch.get_num_threads(),
        'lightning_steps_per_s': lightning,
        'plain_loop_steps_per_s': plain,
        'fast_steps_per_s': fast,
        'compiled_steps_per_s': compiled,
        'ensemble_model_steps_per_s': ensemble,
        'compiled_ensemble_model_steps_per_s': compiled_ensemble,
        'compile_seconds': {'first': compile_cold, 'cached': compile_cached},
        'cuda_model_steps_per_s': gpu or None,
        'eval_colours_per_s': colours,
        'eval_variant_colours_per_s': variant_colours,
        'chunk_seeds_per_s': {'seeds': CHUNK_SEEDS, **chunk},
        'sweep_60_seconds': sweep,
        'sweep_60_eager_seconds': sweep_eager,
        'search_batch': search,
        'report_seconds': {'1': report_serial, str(default_workers()): report_parallel},
        'peak_rss_mib': peak_rss_mib,
        'text': text,
        'ratios': ratios,
    }
    args.out.write_text(json.dumps(results, indent=2) + '\n')
    print(f'Written: {args.out}')


if __name__ == '__main__':
    sys.exit(main())
