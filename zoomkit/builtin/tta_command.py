"""`zoomkit tta`: test-time methods side by side (live), or selection rules over stored results (--from)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl

DEFAULT_METHODS = ("baseline", "memo", "memo-rrc", "zoom-mean-probability", "zoom-max-confidence",
                   "zoom-min-entropy", "zoom-majority-vote", "zoom-mean-top10-confident")


def make_command() -> click.Command:
    from zoomkit.cli import DEFAULT_CROPS, DEFAULT_DATASET, DEFAULT_MODEL, DEFAULT_OUT, model_options

    @click.command(name="tta")
    @click.option("-m", "--model", default=None, help=f"Model name [default: {DEFAULT_MODEL}]")
    @click.option("-d", "--dataset", default=None, help=f"Dataset [default: {DEFAULT_DATASET}]")
    @click.option("--data-root", type=click.Path(path_type=Path), help="Dataset folder.")
    @click.option("--method", "methods", multiple=True,
                  help="TTA method (repeatable; `zoomkit list tta`; zoom-<rule> for any deployable rule) "
                       "[default: all built-in]")
    @click.option("--crops", "crops_name", default=DEFAULT_CROPS, show_default=True,
                  help="Crop strategy of the zoom-* methods.")
    @click.option("-B", "--augmentations", type=click.IntRange(min=1), default=64, show_default=True,
                  help="MEMO / MEMO+RRC views per image.")
    @click.option("--prior-strength", type=float, default=16.0, show_default=True,
                  help="MEMO batch-norm prior N (weight N/(N+1) on running stats); negative: off.")
    @click.option("--optimizer", type=click.Choice(["auto", "sgd", "adamw"]), default="auto",
                  show_default=True, help="MEMO optimizer (auto: AdamW for transformers, else SGD).")
    @click.option("--lr", type=float, default=None,
                  help="MEMO learning rate [default: 2.5e-4 SGD, 1e-5 AdamW]")
    @click.option("--center-interpolation", type=click.Choice(["bilinear", "bicubic"]), default="bilinear",
                  show_default=True, help="Resize of the clean centre view (paper Table 2: bilinear).")
    @click.option("-b", "--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
                  help="Forward batch of the zoom methods.")
    @click.option("--subset-mode", type=click.Choice(["mask", "full"]), default="mask", show_default=True)
    @click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
    @click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), default=Path(DEFAULT_OUT),
                  show_default=True, help="Folder for the results file.")
    @click.option("--overwrite", is_flag=True, help="Replace an existing results file.")
    @click.option("--resume", is_flag=True, help="Continue an unfinished run of the same options.")
    @click.option("--from", "from_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Offline: apply --rule to a stored `zoomkit oracle` results file.")
    @click.option("--rule", "rules", multiple=True,
                  help="Selection rule for --from (repeatable) [default: all].")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON list to stdout.")
    @model_options
    def tta(model, dataset, data_root, methods, crops_name, augmentations, prior_strength, optimizer, lr,
            center_interpolation, batch_size, subset_mode, limit, out, overwrite, resume, from_path, rules,
            as_json, weights, download, random_init, device, amp, channels_last, seed) -> None:
        """Test-time augmentation: zoom TTA, MEMO and MEMO+RRC on accuracy and cost (paper §5).

        \b
        Live:    zoomkit tta -m efficientnet-lite0 -d sample --method baseline --method memo-rrc
        Offline: zoomkit tta --from RESULTS.h5 --rule max-confidence --rule mean-probability
        """
        if from_path is not None:
            if methods or model or dataset:
                raise ZoomkitError("--from evaluates stored results; drop -m/-d/--method or drop --from")
            _offline(from_path, rules, as_json)
            return
        if rules:
            raise ZoomkitError(
                "--rule applies to stored results: add --from RESULTS.h5, or use --method zoom-RULE")
        _live(model or DEFAULT_MODEL, dataset or DEFAULT_DATASET, data_root, methods or DEFAULT_METHODS,
              crops_name, augmentations, prior_strength, optimizer, lr, center_interpolation, batch_size,
              subset_mode, limit, out, overwrite, resume, as_json, weights, download, random_init, device,
              amp, channels_last, seed)

    return tta


def _live(model_name, dataset, data_root, methods, crops_name, augmentations, prior_strength, optimizer, lr,
          center_interpolation, batch_size, subset_mode, limit, out, overwrite, resume, as_json, weights,
          download, random_init, device, amp, channels_last, seed) -> None:
    import torch

    from zoomkit import components
    from zoomkit.cli import _version_attrs
    from zoomkit.console import progress_reporter
    from zoomkit.engine.forward import resolve_device
    from zoomkit.engine.scoring import label_space
    from zoomkit.engine.tta import TTAOptions, resolve_methods, run_tta, summarize_tta, tta_results_name

    specs = resolve_methods(methods)
    strategy = components.crop_strategy(crops_name)
    data = components.open_dataset(dataset, data_root, limit)
    dev = resolve_device(device)
    torch.manual_seed(seed)  # random-init weights depend on the seed alone
    model = components.load_model(model_name, weights=weights, allow_download=download,
                                  random_init=random_init, device=str(dev))
    options = TTAOptions(
        device=dev, label_space=label_space(data.classes, subset_mode, model.num_classes),
        augmentations=augmentations, seed=seed, crops=strategy, batch_size=batch_size,
        amp=(dev.type == "cuda") if amp is None else amp, channels_last=channels_last,
        prior_strength=prior_strength, optimizer=optimizer, lr=lr, center_interpolation=center_interpolation,
    )
    path = out / tta_results_name(model_name, data.name)
    attrs = {**_version_attrs(), "command": shlex.join(["zoomkit", *sys.argv[1:]]),
             "subset_mode": subset_mode}
    with progress_reporter(f"tta {model_name} on {data.name}", len(data)) as report:
        run_tta(model, data, specs, options, path, attrs, overwrite, report, resume=resume)
    _print(summarize_tta(path), as_json, f"TTA: {model_name} on {data.name} ({path})", "method")


def _offline(path: Path, rules, as_json: bool) -> None:
    from zoomkit.engine.tta import evaluate_rules
    from zoomkit.plugins import get_host

    if not path.exists():
        raise ZoomkitError(f"--from {path} does not exist")
    names = rules or tuple(sorted(get_host().components("rules")))
    _print(evaluate_rules(path, names), as_json, f"selection rules on {path}", "rule")


def _print(rows: list[dict[str, Any]], as_json: bool, title: str, key: str) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from zoomkit.console import out_console

    label_sets = list(rows[0]["top1_by_label_set"]) if rows else []
    table = Table(title=title)
    table.add_column(key)
    for name in label_sets:
        table.add_column(f"top-1 % ({name})" if len(label_sets) > 1 else "top-1 %", justify="right")
    if key == "method":
        table.add_column("ms/image", justify="right")
    table.add_column("forward/image", justify="right")
    table.add_column("backward/image", justify="right")
    for row in rows:
        name = row[key] if row.get("deployable", True) else f"{row[key]} (upper bound: uses labels)"
        cells = [name, *(f"{100 * row['top1_by_label_set'].get(s, float('nan')):.2f}" for s in label_sets)]
        if key == "method":
            cells.append(f"{row['ms_per_image']:.1f}")
        cells += [f"{row['forward_per_image']:g}", f"{row['backward_per_image']:g}"]
        table.add_row(*cells)
    out_console().print(table)


@hookimpl
def zoomkit_register_commands(cli: click.Group) -> None:
    cli.add_command(make_command())
