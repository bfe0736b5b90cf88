"""The `zoomkit` command line: thin commands that parse, call the engine and print.

Heavy libraries (torch, timm, open_clip, h5py) are imported inside commands, so `zoomkit --help` is fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from zoomkit import __version__
from zoomkit.config import with_run_config
from zoomkit.console import err_console, out_console, progress_reporter
from zoomkit.errors import ZoomkitError
from zoomkit.plugins import get_host

DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_DATASET = "sample"
DEFAULT_CROPS = "paper-324"
DEFAULT_OUT = "zoomkit-results"


class ZoomkitGroup(click.Group):
    """A click group that turns :class:`ZoomkitError` into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZoomkitError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=ZoomkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoomkit")
def cli() -> None:
    """Zoom, framing and spatial bias in image classifiers (ImageNet-Hard, NeurIPS 2023)."""


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class BatchSize(click.ParamType):
    """A positive integer, or `auto` (probe the largest batch that fits on CUDA; 64 on CPU)."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            number = int(str(value))
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"{value!r} is neither a positive integer nor 'auto'", param, ctx)
        return number


# ------------------------------------------------------------------------------------------- oracle
def model_options(fn):
    """Options every command that loads a model shares."""
    for decorator in reversed([
        click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
                     help="Local checkpoint for the model (loaded with weights_only=True)."),
        click.option("--download", is_flag=True, help="Allow fetching hub weights (off by default)."),
        click.option("--random-init", is_flag=True, help="Random weights (smoke tests)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--amp/--no-amp", default=None, help="bf16 autocast (default: on for CUDA)."),
        click.option("--channels-last/--no-channels-last", default=True, show_default=True,
                     help="channels_last memory format (faster on CPU and GPU)."),
        click.option("--seed", type=int, default=0, show_default=True),
    ]):
        fn = decorator(fn)
    return fn


@cli.command()
@click.option("-m", "--model", "models", multiple=True,
              help=f"Model name (repeatable; `paper` = the paper's six) [default: {DEFAULT_MODEL}]")
@click.option("-d", "--dataset", default=DEFAULT_DATASET, show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), help="Dataset folder.")
@click.option("--crops", "crops_name", default=DEFAULT_CROPS, show_default=True, help="Crop strategy.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path(DEFAULT_OUT),
              show_default=True, help="Folder for results files.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option("-b", "--batch-size", type=BatchSize(), default=64, show_default=True,
              help="Crops per forward, or `auto` (largest that fits on CUDA; retried at half on OOM).")
@click.option("--resize-on", type=click.Choice(["auto", "cpu", "device"]), default="auto", show_default=True,
              help="cpu: PIL in the workers (exact, the paper's); device: torch on the model's device "
                   "(within 2 grey levels of PIL); auto: device on CUDA, cpu otherwise.")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model (slow start).")
@click.option("-j", "--workers", type=click.IntRange(min=0), default=None,
              help="Image-preparation worker processes [default: on CUDA half the cores, at most 4; on CPU "
                   "the cores torch's threads leave free].")
@click.option("--subset-mode", type=click.Choice(["mask", "full"]), default="mask", show_default=True,
              help="mask: argmax inside the dataset's classes (the paper); full: 1000-way argmax.")
@click.option("--topk", type=click.IntRange(min=1, max=20), default=5, show_default=True)
@click.option("--save-logits", is_flag=True, help="Also store label-space logits (float16) per crop.")
@click.option("--resume", is_flag=True, help="Continue an unfinished run (or reuse a finished one).")
@click.option("--overwrite", is_flag=True, help="Recompute even if results exist.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list to stdout.")
@click.option("--clip-norm", type=click.Choice(["imagenet", "native"]), default="imagenet", show_default=True,
              help="CLIP input normalisation: ImageNet mean/std (the paper's zoom study) or CLIP's own.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML run config (models, datasets with data roots, any option); flags you pass win.")
@click.option("--dry-run", is_flag=True, help="List the planned runs, data roots and weights; load nothing.")
@model_options
@with_run_config(DEFAULT_MODEL, DEFAULT_DATASET)
def oracle(models, dataset, data_root, crops_name, out, limit, batch_size, resize_on, compile_model, workers,
           subset_mode, topk, save_logits, resume, overwrite, as_json, clip_norm, config_path, dry_run,
           weights, download, random_init, device, amp, channels_last, seed, run_config) -> None:
    """Accuracy when the best of the zoom crops is chosen (paper Table 1).

    `-m paper` runs the paper's six models; `--config FILE` reads models, datasets and options from YAML.
    """
    from zoomkit.run_plan import plan_json, plan_runs, plan_tables

    plan = plan_runs(run_config)  # checks every name before anything heavy happens
    if dry_run:
        if as_json:
            click.echo(json.dumps(plan_json(plan, run_config), indent=2))
        else:
            for table in plan_tables(plan, run_config):
                out_console().print(table)
        return
    import torch

    from zoomkit import components
    from zoomkit.engine.device_crops import resize_algorithm
    from zoomkit.engine.distributed import choose_batch_size, init_from_env, run_oracle_sharded
    from zoomkit.engine.forward import CropClassifier, resolve_device
    from zoomkit.engine.oracle import RunOptions, results_name
    from zoomkit.engine.pipeline import default_prep_workers
    from zoomkit.engine.scoring import label_space
    from zoomkit.engine.summary import summarize
    from zoomkit.results import open_results

    strategy = components.crop_strategy(crops_name)
    opened = [components.open_dataset(d.name, d.data_root, limit) for d in run_config.datasets]
    context, dev = init_from_env(resolve_device(device))  # torchrun: this rank's share of the work
    use_amp = (dev.type == "cuda") if amp is None else amp
    options = RunOptions(
        batch_size=64 if batch_size == "auto" else batch_size, resize=resize_algorithm(resize_on, dev),
        workers=default_prep_workers(dev) if workers is None else workers, resume=resume,
        overwrite=overwrite, topk=topk, save_logits=save_logits, subset_mode=subset_mode, seed=seed,
        command=shlex.join(["zoomkit", *sys.argv[1:]]), config_yaml=run_config.to_yaml(),
        attrs=_version_attrs(),
    )
    summaries = []
    for entry in run_config.models:
        name = entry.name
        torch.manual_seed(seed)  # random-init weights depend on the seed alone, not on model order
        model = components.load_model(name, weights=entry.weights, allow_download=download,
                                      random_init=random_init, device=str(dev),
                                      options={"clip_norm": clip_norm})
        for data in opened:
            space = label_space(data.classes, subset_mode, model.num_classes)
            classifier = CropClassifier(model, dev, space, topk, use_amp, channels_last, save_logits,
                                        compile=compile_model, on_notice=lambda m: err_console().print(m))
            path = out / results_name(name, data.name, strategy.name)
            if batch_size == "auto":
                options.batch_size = choose_batch_size(context, classifier, path, resume)
            classifier.static_batch = options.batch_size
            title, share = context.progress_share(f"{name} on {data.name}", len(data), options.batch_size,
                                                  len(strategy.crops))
            with progress_reporter(title, share) if context.is_main else contextlib.nullcontext() as report:
                run_oracle_sharded(context, classifier, data, strategy, path, options, report)
            if context.is_main:
                with open_results(path) as results:
                    summaries.append(summarize(results))
    context.close()
    if not context.is_main:
        return
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    else:
        from zoomkit.report.terminal import oracle_table

        out_console().print(oracle_table(summaries))


def _version_attrs() -> dict[str, str]:
    import importlib.metadata as md

    attrs = {"zoomkit_version": __version__}
    for dist, key in (("torch", "torch_version"), ("timm", "timm_version"),
                      ("open_clip_torch", "open_clip_version"), ("h5py", "h5py_version")):
        try:
            attrs[key] = md.version(dist)
        except md.PackageNotFoundError:
            attrs[key] = ""
    return attrs


# -------------------------------------------------------------------------------------------- crops
@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crops", "crops_name", default=DEFAULT_CROPS, show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def crops(image, crops_name, out) -> None:
    """Write every crop of IMAGE (before normalisation) as S{scale}_r{row}_c{col}.png."""
    from PIL import Image

    from zoomkit import components
    from zoomkit.imaging import ImageError, decode_rgb, zoom_crops

    strategy = components.crop_strategy(crops_name)
    try:
        rgb = decode_rgb(image.read_bytes())
        arrays = zoom_crops(rgb, strategy.crops, strategy.size, strategy.grid)
    except ImageError as exc:
        raise ZoomkitError(f"{image}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    for crop, array in zip(strategy.crops, arrays, strict=True):
        Image.fromarray(array).save(out / f"S{crop.scale:04d}_r{crop.row}_c{crop.col}.png")
    err_console().print(f"wrote {len(strategy.crops)} crops of {image} to {out}")


# ------------------------------------------------------------------------------------ plugins, list
@cli.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json) -> None:
    """List plugins, their versions and hooks, and any that failed to load."""
    host = get_host()
    for kind in ("models", "datasets", "crops", "rules", "tta"):
        host.components(kind)  # surfaces hook failures
    infos = host.plugins()
    if as_json:
        click.echo(json.dumps({
            "plugins": [{"name": p.name, "version": p.version, "hooks": list(p.hooks), "builtin": p.builtin}
                        for p in infos],
            "failures": [{"name": f.name, "reason": f.reason} for f in host.failures],
        }, indent=2))
        return
    from rich.table import Table

    table = Table(title="zoomkit plugins")
    for col in ("plugin", "version", "hooks"):
        table.add_column(col)
    for p in infos:
        table.add_row(p.name + (" (built-in)" if p.builtin else ""), p.version, ", ".join(p.hooks))
    out_console().print(table)
    for f in host.failures:
        err_console().print(f"[red]failed:[/red] {f.name}: {f.reason}", markup=True, highlight=False)


KIND_CHOICES = ("models", "datasets", "crops", "rules", "tta")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(KIND_CHOICES))
@click.option("--json", "as_json", is_flag=True)
def list_components(kind, as_json) -> None:
    """List components of KIND with the plugin that provides each."""
    host = get_host()
    rows = []
    for name, registered in sorted(host.components(kind).items()):
        spec = registered.spec
        row = {"name": name, "plugin": registered.plugin, "description": getattr(spec, "description", "")}
        if kind == "models":
            row["weights"] = spec.weights
        elif kind == "datasets":
            row["layout"] = spec.layout
        elif kind == "crops":
            row["n_crops"] = len(spec.crops)
        elif kind == "rules":
            row["uses_labels"] = spec.uses_labels
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"zoomkit {kind}")
        for col in rows[0] if rows else ("name",):
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(v) for v in row.values()))
        out_console().print(table)
    for f in host.failures:
        err_console().print(f"plugin {f.name} failed: {f.reason}", markup=False, highlight=False)


def main() -> None:
    get_host().register_commands(cli)
    cli(prog_name="zoomkit")
