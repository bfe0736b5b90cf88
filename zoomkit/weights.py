"""Loading checkpoints safely and keeping model factories offline unless the user allows downloads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from zoomkit.errors import MissingWeightsError, ZoomkitError


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A state dict from a local file (`weights_only=True`), unwrapping `state_dict`/`model` keys."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ZoomkitError(f"cannot load weights from {path}: {type(exc).__name__}: {exc}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ZoomkitError(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


@contextlib.contextmanager
def offline_unless(allow_download: bool, what: str) -> Iterator[None]:
    """Within this block, hub and URL downloads fail with a one-line :class:`MissingWeightsError`.

    Files already in the Hugging Face or torch hub caches still load.
    """
    if allow_download:
        yield
        return
    import torch.hub

    previous_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    patched: list[tuple[Any, str, Any]] = []
    with contextlib.suppress(ImportError):
        import huggingface_hub.constants as hf_constants

        patched.append((hf_constants, "HF_HUB_OFFLINE", hf_constants.HF_HUB_OFFLINE))
        hf_constants.HF_HUB_OFFLINE = True

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise MissingWeightsError(
            f"{what}: weights are not in the local cache ({torch.hub.get_dir()}/checkpoints) and "
            f"downloads are off; pass --weights PATH, or --download to fetch {url}"
        )

    patched.append((torch.hub, "download_url_to_file", torch.hub.download_url_to_file))
    torch.hub.download_url_to_file = refuse
    try:
        yield
    except MissingWeightsError:
        raise
    except Exception as exc:
        if _looks_offline(exc):
            raise MissingWeightsError(
                f"{what}: weights are not in the local Hugging Face cache and downloads are off; "
                "pass --weights PATH, or --download to fetch them"
            ) from None
        raise
    finally:
        for owner, attr, value in reversed(patched):
            setattr(owner, attr, value)
        if previous_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous_env


def _looks_offline(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return bool(names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "EntryNotFoundError"}) or (
        "offline" in text or "cannot find the requested files" in text or "local_files_only" in text
    )


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__
