"""What a benchmark hands back besides printing it: its figures as ratios to the baseline it
measured in the same run, and optionally the measured values themselves, so
`ecolens benchmark NAME --plot FILE.png` can draw any of them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    """``panels``: one per measure (e.g. "speed-up vs Keras predict()"): bar name -> ratio to the
    baseline. ``values``: one per measured quantity with its unit in the title (e.g. "req/s,
    photo"): group (e.g. "8 clients", or "" for one group) -> series (e.g. a server) -> value."""

    title: str
    baseline: str
    panels: dict[str, dict[str, float]] = field(default_factory=dict)
    exit_code: int = 0
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
