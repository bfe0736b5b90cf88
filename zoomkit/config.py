"""YAML run configs for `zoomkit oracle`, merged with command-line flags (flags the user passed win).

A config is a mapping. `models` (names, or `{name, weights}`), `datasets` (names, or `{name, data_root}`)
and `data_dir` (a base folder for relative data roots) are special; every other key is an option of
the command, spelled as its long flag with underscores (`--batch-size` -> `batch_size`, `--crops` ->
`crops`), and is checked against that option's type. Example::

    models: [paper]                 # the six models of the paper's Table 1
    data_dir: /data
    datasets:
      - {name: imagenet, data_root: imagenet/val}
      - {name: imagenet-a, data_root: imagenet-a}
    crops: paper-324
    batch_size: 128
    device: cuda

Every mistake (unknown key, wrong type, bad value, unreadable YAML) is one :class:`ZoomkitError` line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from zoomkit.errors import ZoomkitError

PAPER_MODELS: tuple[str, ...] = ("alexnet", "vgg16", "resnet18", "resnet50", "vit_b_32", "clip-vit-l-14")
"""`-m paper`: the six classifiers of the paper's Table 1."""
PAPER_ALIAS = "paper"

# Parameters that are never read from a config, and the ones the `models`/`datasets` keys replace.
NOT_CONFIGURABLE = frozenset({"config_path", "dry_run"})
SPECIAL_PARAMS = frozenset({"models", "dataset", "data_root"})
SPECIAL_KEYS = ("models", "datasets", "data_dir")
PASSED = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    weights: Path | None = None


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    data_root: Path | None = None


@dataclass
class RunConfig:
    """The resolved runs: models x datasets, plus every other option by click parameter name."""

    models: tuple[ModelEntry, ...]
    datasets: tuple[DatasetEntry, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)  # config key -> click parameter name
    paper: bool = False  # `paper` was expanded: its torchvision names must come from zoomkit-torchvision

    def to_dict(self) -> dict[str, Any]:
        """A config mapping that reproduces these runs (what results files store as `config_yaml`)."""
        out: dict[str, Any] = {
            "models": [m.name if m.weights is None else {"name": m.name, "weights": str(m.weights)}
                       for m in self.models],
            "datasets": [{"name": d.name, "data_root": None if d.data_root is None else str(d.data_root)}
                         for d in self.datasets],
        }
        for key, name in self.keys.items():
            value = self.settings.get(name)
            out[key] = str(value) if isinstance(value, Path) else value
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------------------------------ reading
def load_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (`yaml.safe_load`), or a one-line error."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ZoomkitError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ZoomkitError(f"config file {path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ZoomkitError(f"config file {path} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ZoomkitError(f"config file {path}: the top level must be a mapping of keys to values")
    return data


def config_keys(command: click.Command) -> dict[str, click.Parameter]:
    """Config key (long flag, underscores) -> option, for every option a config may set."""
    keys = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in NOT_CONFIGURABLE | SPECIAL_PARAMS:
            continue
        long_flags = [o for o in param.opts if o.startswith("--")]
        flag = max(long_flags, key=len) if long_flags else param.opts[0]
        keys[flag.lstrip("-").replace("-", "_")] = param
    return keys


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _kind(param: click.Parameter) -> str:
    """The YAML type a click parameter type expects; "any" for custom types, which check for themselves."""
    kinds = ((click.types.BoolParamType, "bool"), (click.types.IntParamType, "int"),
             (click.types.FloatParamType, "float"),
             ((click.types.StringParamType, click.Choice, click.Path, click.File), "str"))
    return next((kind for types, kind in kinds if isinstance(param.type, types)), "any")


def convert(ctx: click.Context, param: click.Parameter, key: str, value: Any, where: str,
            default: Any = None) -> Any:
    """A config value checked against the option's type (strictly: no 6.5 for an integer).

    `null` is accepted only for an option whose own default is empty (`default` is None).
    """
    if value is None:
        if default is None:
            return None
        raise ZoomkitError(f"{where}: {key} must not be empty")
    kind = _kind(param)
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "any": isinstance(value, str | int | float | bool),
    }[kind]
    if not ok or getattr(param, "multiple", False):
        expected = _EXPECTED.get(kind, "a single value")
        raise ZoomkitError(f"{where}: {key} must be {expected}, not {type(value).__name__} {value!r}")
    if kind == "str" and isinstance(param.type, click.Path):
        value = os.path.expandvars(value)
    try:
        return param.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise ZoomkitError(f"{where}: {key}: {exc.message}") from None


def _path(value: Any, where: str, base: Path | None = None) -> Path:
    if not isinstance(value, str) or not value:
        raise ZoomkitError(f"{where} must be a path string, not {value!r}")
    path = Path(os.path.expandvars(value)).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _entries(raw: Any, key: str, fields: tuple[str, str], where: str) -> list[tuple[str, Any]]:
    """A list of names or `{name, <field>}` mappings (a single name is a one-item list)."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ZoomkitError(f"{where}: {key} must be a non-empty list of names or {{{', '.join(fields)}}} "
                           "mappings")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str) and item:
            out.append((item, None))
            continue
        if not isinstance(item, dict):
            raise ZoomkitError(f"{where}: {key}[{i}] must be a name or a mapping, not {item!r}")
        unknown = set(item) - set(fields)
        if unknown:
            raise ZoomkitError(f"{where}: {key}[{i}]: unknown key {sorted(unknown)[0]!r} "
                               f"(allowed: {', '.join(fields)})")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise ZoomkitError(f"{where}: {key}[{i}] needs a `name`")
        out.append((item["name"], item.get(fields[1])))
    return out


def expand_models(names: list[str]) -> list[str]:
    """Names with `paper` expanded to the six paper models; duplicates dropped, order kept."""
    out: list[str] = []
    for name in names:
        out.extend(PAPER_MODELS if name == PAPER_ALIAS else (name,))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------- merging
def resolve(ctx: click.Context, params: Mapping[str, Any], default_model: str,
            default_dataset: str) -> RunConfig:
    """Merge the `--config` file (if any) under the flags the user actually passed."""
    source = params.get("config_path")
    raw = load_yaml(source) if source else {}
    where = f"config {source}"
    keys = config_keys(ctx.command)
    unknown = [k for k in raw if k not in keys and k not in SPECIAL_KEYS]
    if unknown:
        raise ZoomkitError(f"{where}: unknown key {unknown[0]!r}; allowed keys: "
                           f"{', '.join([*SPECIAL_KEYS, *sorted(keys)])}")

    def passed(name: str) -> bool:
        return ctx.get_parameter_source(name) in PASSED

    settings = {name: value for name, value in params.items()}
    for key, param in keys.items():
        if key in raw and not passed(param.name):
            settings[param.name] = convert(ctx, param, key, raw[key], where, params.get(param.name))

    # models: -m wins; else the config's list; else the default
    if passed("models") and params.get("models"):
        names = list(params["models"])
        models = [ModelEntry(name) for name in expand_models(names)]
    elif "models" in raw:
        entries = _entries(raw["models"], "models", ("name", "weights"), where)
        names = [n for n, _ in entries]
        weights = {n: _path(w, f"{where}: models {n} weights") for n, w in entries if w is not None}
        models = [ModelEntry(n, weights.get(n)) for n in expand_models(names)]
    else:
        names, models = [default_model], [ModelEntry(default_model)]

    # datasets: -d wins (with --data-root); --data-root alone re-roots a one-dataset config
    base = _path(raw["data_dir"], f"{where}: data_dir") if raw.get("data_dir") is not None else None
    cli_root = params.get("data_root")
    if passed("dataset"):
        datasets = [DatasetEntry(params["dataset"], cli_root)]
    elif "datasets" in raw:
        datasets = [DatasetEntry(n, None if r is None else _path(r, f"{where}: datasets {n} data_root", base))
                    for n, r in _entries(raw["datasets"], "datasets", ("name", "data_root"), where)]
        if passed("data_root"):
            if len(datasets) != 1:
                raise ZoomkitError(f"--data-root is ambiguous with the {len(datasets)} datasets of {source}; "
                                   "pass -d NAME with it")
            datasets = [DatasetEntry(datasets[0].name, cli_root)]
    else:
        datasets = [DatasetEntry(params.get("dataset") or default_dataset, cli_root)]
    if len({(d.name, d.data_root) for d in datasets}) != len(datasets):
        raise ZoomkitError(f"{where}: a dataset is listed twice")

    if settings.get("weights") is not None:
        if len(models) > 1:
            raise ZoomkitError("--weights gives one checkpoint, but several models are selected; give each "
                               "model its weights in a config (models: [{name: ..., weights: ...}])")
        models = [ModelEntry(models[0].name, settings["weights"])]
    return RunConfig(tuple(models), tuple(datasets), settings, Path(source) if source else None,
                     {key: param.name for key, param in keys.items() if param.name != "weights"},
                     paper=PAPER_ALIAS in names)


Command = Callable[..., Any]


def with_run_config(default_model: str, default_dataset: str) -> Callable[[Command], Command]:
    """Command decorator: merge `--config` into the options, then call with `run_config=RunConfig`.

    Every option of the command becomes a config key, including options added later.
    """

    def decorate(fn: Command) -> Command:
        @functools.wraps(fn)
        def wrapper(**params: Any) -> Any:
            ctx = click.get_current_context()
            run_config = resolve(ctx, params, default_model, default_dataset)
            merged = {name: run_config.settings.get(name, value) for name, value in params.items()}
            return fn(**merged, run_config=run_config)

        return wrapper

    return decorate
