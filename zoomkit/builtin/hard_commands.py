"""`zoomkit hard eval` and `zoomkit hard build`: ImageNet-Hard evaluation and new hard benchmarks."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from zoomkit.cli import DEFAULT_OUT, _version_attrs, default_workers, model_options
from zoomkit.console import err_console, out_console, progress_reporter
from zoomkit.hookspecs import hookimpl

DEFAULT_HARD_DATASET = "imagenet-hard"


def _safe(name: str) -> str:
    """A dataset name usable in a file name (e.g. `hf:taesiri/imagenet-hard`)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@click.group()
def hard() -> None:
    """ImageNet-Hard: evaluate on it, and build new hard benchmarks from oracle results."""


@hard.command(name="eval")
@click.option("-m", "--model", "models", multiple=True, required=True, help="Model name (repeatable).")
@click.option("-d", "--dataset", default=DEFAULT_HARD_DATASET, show_default=True,
              help="Dataset name (e.g. a set built by `zoomkit hard build` is read as imagenet-hard).")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="Folder holding the published parquet files (e.g. DIR/data/validation-*.parquet).")
@click.option("--crops", "crops_name", default=None,
              help="Run the zoom oracle with this crop strategy (e.g. paper-324) instead of 1 crop.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path(DEFAULT_OUT),
              show_default=True, help="Folder for results files.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("-j", "--workers", type=click.IntRange(min=0), default=None,
              help="Image-preparation worker processes [default: half the cores, at most 4].")
@click.option("--topk", type=click.IntRange(min=1, max=20), default=5, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an unfinished run (or reuse a finished one).")
@click.option("--overwrite", is_flag=True, help="Recompute even if results exist.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list to stdout.")
@model_options
def eval_command(models, dataset, data_root, crops_name, out, limit, batch_size, workers, topk, resume,
                 overwrite, as_json, weights, download, random_init, device, amp, channels_last,
                 seed) -> None:
    """Top-1 over all 1000 classes, multi-label (the ImageNet-Hard protocol), overall and by origin.

    Each model uses its own preprocessing (1 crop). With --crops, the zoom oracle runs instead
    (all crops, 1000-way argmax). Results are streamed to HDF5 under --out.
    """
    from zoomkit import components
    from zoomkit.engine.forward import CropClassifier, resolve_device
    from zoomkit.engine.hard import PREPROCESS, EvalOptions, hard_summary, run_eval
    from zoomkit.engine.oracle import RunOptions, results_name, run_oracle
    from zoomkit.results import open_results

    data = components.open_dataset(dataset, data_root, limit)
    strategy = components.crop_strategy(crops_name) if crops_name else None
    dev = resolve_device(device)
    use_amp = (dev.type == "cuda") if amp is None else amp
    n_workers = default_workers() if workers is None else workers
    command = shlex.join(["zoomkit", *sys.argv[1:]])
    summaries = []
    for name in models:
        model = components.load_model(name, weights=weights, allow_download=download,
                                      random_init=random_init, device=str(dev))
        path = out / results_name(name, _safe(data.name), strategy.name if strategy else PREPROCESS)
        with progress_reporter(f"{name} on {data.name}", len(data)) as report:
            if strategy is None:
                options = EvalOptions(batch_size=batch_size, workers=n_workers, resume=resume,
                                      overwrite=overwrite, topk=topk, seed=seed, amp=use_amp,
                                      channels_last=channels_last, command=command, attrs=_version_attrs())
                run_eval(model, dev, data, path, options, report)
            else:
                classifier = CropClassifier(model, dev, None, topk, use_amp, channels_last)
                options = RunOptions(batch_size=batch_size, workers=n_workers, resume=resume,
                                     overwrite=overwrite, topk=topk, subset_mode="full", seed=seed,
                                     command=command, attrs=_version_attrs())
                run_oracle(classifier, data, strategy, path, options, report)
        with open_results(path) as results:
            summaries.append(hard_summary(results))
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    console = out_console()
    console.print(_accuracy_table(summaries, oracle=strategy is not None))
    console.print(_origin_table(summaries, oracle=strategy is not None))


def _accuracy_table(summaries: list[dict[str, Any]], oracle: bool) -> Any:
    from rich.table import Table

    from zoomkit.report.terminal import pct

    table = Table(title="zoomkit hard eval (top-1 %, multi-label, 1000-way)")
    columns = ["model", "dataset", "crops", "images", "errors", "top-1" if not oracle else "1 crop"]
    columns += ["oracle"] if oracle else []
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "dataset", "crops") else "right")
    for s in summaries:
        row = [s["model"], s["dataset"], s["crop_strategy"], str(s["n_images"]), str(s["n_errors"]),
               pct(s["top1"])]
        table.add_row(*row, *([pct(s["oracle_top1"])] if oracle else []))
    return table


def _origin_table(summaries: list[dict[str, Any]], oracle: bool) -> Any:
    from rich.table import Table

    from zoomkit.report.terminal import pct

    table = Table(title="by origin (top-1 %" + (", 1 crop / oracle)" if oracle else ")"))
    table.add_column("origin")
    table.add_column("images", justify="right")
    for s in summaries:
        table.add_column(s["model"], justify="right")
    origins = sorted({o for s in summaries for o in s["by_origin"]})
    for origin in origins:
        n = next(s["by_origin"][origin]["n_images"] for s in summaries if origin in s["by_origin"])
        cells = []
        for s in summaries:
            figures = s["by_origin"].get(origin)
            if figures is None:
                cells.append("-")
            elif oracle:
                cells.append(f"{pct(figures['top1'])} / {pct(figures['oracle_top1'])}")
            else:
                cells.append(pct(figures["top1"]))
        table.add_row(origin, str(n), *cells)
    return table


@hard.command(name="build")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the new set (DIR/data/validation-00000-of-00001.parquet + build record).")
@click.option("--data-root", type=click.Path(exists=True, path_type=Path),
              help="Where the results' dataset lives now, if it moved since the oracle run.")
@click.option("--rows-per-group", type=click.IntRange(min=1), default=100, show_default=True,
              help="Parquet rows per row group.")
@click.option("--overwrite", is_flag=True, help="Replace a previous build in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the build record as JSON to stdout.")
def build_command(results, out, data_root, rows_per_group, overwrite, as_json) -> None:
    """Keep the images that every given model gets wrong under every crop (the paper's filter).

    RESULTS are oracle results files of one or more models on the same samples. The kept images
    are written in the published ImageNet-Hard parquet layout, readable with
    `zoomkit hard eval --data-root OUT` and with Hugging Face `datasets`.
    """
    from zoomkit import components
    from zoomkit.engine.hard import BUILD_PARQUET, BUILD_RECORD, build_hard_set

    record = build_hard_set(list(results), out, open_dataset=lambda name, root: components.open_dataset(
        name, root), data_root=data_root, overwrite=overwrite, rows_per_group=rows_per_group)
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
        return
    from rich.table import Table

    console = out_console()
    console.print("kept: images that every input gets wrong under every crop", markup=False)
    for i in record["inputs"]:
        console.print(f"input: {i['model']} on {i['dataset']} ({i['crop_strategy']}, {i['n_crops']} crops, "
                      f"{i['n_wrong_everywhere']} wrong everywhere) {i['path']}",
                      markup=False, highlight=False)
    table = Table(title="zoomkit hard build")
    for col in ("origin", "candidates", "kept", "kept %"):
        table.add_column(col, justify="left" if col == "origin" else "right")
    for origin, counts in record["by_origin"].items():
        share = 100 * counts["kept"] / counts["candidates"] if counts["candidates"] else 0.0
        table.add_row(origin, str(counts["candidates"]), str(counts["kept"]), f"{share:.1f}")
    total = record["n_candidates"]
    table.add_row("total", str(total), str(record["n_kept"]),
                  f"{100 * record['n_kept'] / total:.1f}" if total else "-", style="bold")
    console.print(table)
    if record["n_skipped_errors"]:
        err_console().print(f"skipped {record['n_skipped_errors']} image(s) with a per-sample error",
                            markup=False, highlight=False)
    if record["n_kept"] == 0:
        err_console().print(f"no image is wrong under every crop: the set is empty (an empty {BUILD_PARQUET} "
                            f"and {BUILD_RECORD} were written to {out})", markup=False, highlight=False)
    else:
        err_console().print(f"wrote {record['n_kept']} image(s) to {out / BUILD_PARQUET} and "
                            f"{out / BUILD_RECORD}", markup=False, highlight=False)


@hookimpl
def zoomkit_register_commands(cli: click.Group) -> None:
    cli.add_command(hard)
