"""`zoomkit bias` and `zoomkit report`: analyses and reports from stored results (no model is run)."""

from __future__ import annotations

from pathlib import Path

import click

from zoomkit.errors import ZoomkitError
from zoomkit.hookspecs import hookimpl

FORMATS = ("terminal", "md", "html", "json")
DEFAULT_REPORT_DIR = "zoomkit-report"


def _transforms(all_transforms: bool | None) -> str | None:
    return None if all_transforms is None else ("all" if all_transforms else "cover")


def _collect(results, variant, all_transforms):
    """Analyse the results files; name the ones left out on stderr; fail if none is usable."""
    from zoomkit.console import err_console
    from zoomkit.report.collect import collect

    collected = collect(results, variant=variant, transforms=_transforms(all_transforms))
    for s in collected.skipped:
        err_console().print(f"left out {s.path}: {s.reason}", markup=False, highlight=False, soft_wrap=True)
    if not collected.runs:
        raise ZoomkitError("no complete results file to analyse; run `zoomkit oracle` first, or check the "
                           "paths")
    return collected


TRANSFORM_HELP = ("Count all transforms, or only the model's min-cover ones [default: min-cover for the "
                  "visibility variant (the paper), all for the anchor variant].")
VARIANT_HELP = ("visibility: a crop counts for every cell whose centre it shows (the paper's heatmaps); "
                "anchor: only for the cell it is anchored at.")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--all-transforms/--cover-only", "all_transforms", default=None, help=TRANSFORM_HELP)
@click.option("--variant", type=click.Choice(["visibility", "anchor"]), default="visibility",
              show_default=True, help=VARIANT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list to stdout.")
def bias(results, all_transforms, variant, as_json) -> None:
    """Where in the image the useful crops lie: the 3x3 grid of upper bounds (paper §4).

    RESULTS are results files (.h5) or folders of them, written by `zoomkit oracle`.
    """
    import json

    from zoomkit.console import out_console
    from zoomkit.report.analysis_tables import bias_grid_table
    from zoomkit.report.json_report import clean_json

    collected = _collect(results, variant, all_transforms)
    if as_json:
        click.echo(json.dumps(clean_json([
            {"model": run.model, "dataset": run.dataset, "label_set": a.name, "path": run.path,
             **a.bias.to_dict()} for run in collected.runs for a in run.analyses]), indent=2))
        return
    console = out_console()
    for run in collected.runs:
        for a in run.analyses:
            console.print(bias_grid_table(a.bias, f"{run.model} on {run.dataset} ({a.name})"))


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help=f"Folder for report.md/report.html/report.json [default for md and html: "
                   f"{DEFAULT_REPORT_DIR}; terminal and json print to stdout].")
@click.option("--all-transforms/--cover-only", "all_transforms", default=None, help=TRANSFORM_HELP)
@click.option("--variant", type=click.Choice(["visibility", "anchor"]), default="visibility",
              show_default=True, help=VARIANT_HELP)
def report(results, fmt, out, all_transforms, variant) -> None:
    """Tables and figures (Table 1, bias heatmaps, accuracy vs scale, zoom-in/out) from results files.

    RESULTS are results files (.h5) or folders of them. Missing or unfinished files are named, not fatal.
    """
    from zoomkit.console import err_console, out_console

    collected = _collect(results, variant, all_transforms)
    if fmt == "terminal":
        from zoomkit.report.analysis_tables import bias_grid_table, skipped_table, zoom_rich_table
        from zoomkit.report.terminal import oracle_table

        console = out_console()
        if collected.skipped:
            console.print(skipped_table(collected))
        console.print(oracle_table([run.summary for run in collected.runs]))
        console.print(zoom_rich_table(collected))
        for run in collected.runs:
            for a in run.analyses:
                console.print(bias_grid_table(a.bias, f"{run.model} on {run.dataset} ({a.name})"))
        return
    if fmt == "json":
        from zoomkit.report.json_report import render_json

        text = render_json(collected)
        if out is None:
            click.echo(text, nl=False)
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "report.json"
        path.write_text(text, encoding="utf-8")
    else:
        from zoomkit.report.document import build_document

        blocks = build_document(collected)
        target = out or Path(DEFAULT_REPORT_DIR)
        if fmt == "md":
            from zoomkit.report.markdown import write_markdown

            path = write_markdown(blocks, target)
        else:
            from zoomkit.report.html import write_html

            path = write_html(blocks, target)
    err_console().print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


@hookimpl
def zoomkit_register_commands(cli: click.Group) -> None:
    cli.add_command(bias)
    cli.add_command(report)
