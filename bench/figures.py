"""What a benchmark hands back besides printing it: its figures as ratios to the baseline it
measured in the same run, so `ecolens benchmark NAME --plot FILE.png` can draw any of them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    """One panel per measure (e.g. "speed-up vs Keras predict()"): bar name -> ratio to the baseline."""

    title: str
    baseline: str
    panels: dict[str, dict[str, float]] = field(default_factory=dict)
    exit_code: int = 0
