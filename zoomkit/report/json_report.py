"""JSON report: every figure of the collected analyses, NaN written as null."""

from __future__ import annotations

import json
import math
from typing import Any

from zoomkit.report.collect import Collected


def clean_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def render_json(collected: Collected) -> str:
    return json.dumps(clean_json(collected.to_dict()), indent=2) + "\n"
