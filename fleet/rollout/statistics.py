"""Canary statistics: what each group of bins did during a rollout's window, and the judgement
of the canary against the rest (pure functions on counts; fleet/canary applies it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GroupFigures:
    """What one group of bins did during the window."""

    results: int = 0
    uncertain: int = 0
    plastic: int = 0
    errors: int = 0  # times a bin of the group went offline (a crash, a kill, a lost broker, a stop)
    devices: set[str] = field(default_factory=set)

    def add_many(self, device: str, label: str, uncertain: bool, count: int) -> None:
        self.results += count
        self.uncertain += count if uncertain else 0
        self.plastic += count if label == "plastic" else 0
        self.devices.add(device)

    @property
    def outcomes(self) -> int:
        """Results plus errors: a bin that crashes before it answers still counts towards a
        comparison of errors."""
        return self.results + self.errors

    def rate(self, count: int) -> float:
        return count / self.results if self.results else 0.0

    def error_rate(self) -> float:
        return self.errors / self.outcomes if self.outcomes else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "bins": sorted(self.devices),
            "uncertain_rate": round(self.rate(self.uncertain), 3),
            "plastic_share": round(self.rate(self.plastic), 3),
            "errors": self.errors,
            "error_rate": round(self.error_rate(), 3),
        }


@dataclass
class CanaryVerdict:
    healthy: bool
    reasons: list[str]
    canary: dict[str, Any]
    rest: dict[str, Any]
    conclusive: bool = True  # False: too few results was the only reason (no judgement yet)


def judge(
    canary: GroupFigures,
    rest: GroupFigures,
    *,
    min_results: int,
    max_share_delta: float,
    max_uncertain_delta: float,
    max_error_delta: float,
    silent_canaries: list[str],
) -> CanaryVerdict:
    """The canary is worse when it answers a different share of plastic than the rest of the
    fleet (beyond what chance allows over the window), is uncertain more often, fails more
    often, or went silent. Errors are compared once both groups have enough results plus
    errors, so a canary that keeps crashing is judged before it answers ``min_results`` times."""
    reasons = []
    if silent_canaries:
        reasons.append(f"no results from {', '.join(silent_canaries)}")
    compared = canary.results >= min_results and rest.results >= min_results
    if compared:
        delta = abs(canary.rate(canary.plastic) - rest.rate(rest.plastic))
        if delta > max_share_delta:
            reasons.append(f"plastic share differs from the rest by {delta:.2f} (> {max_share_delta:.2f})")
        worse = canary.rate(canary.uncertain) - rest.rate(rest.uncertain)
        if worse > max_uncertain_delta:
            reasons.append(f"uncertain rate above the rest by {worse:.2f} (> {max_uncertain_delta:.2f})")
    if canary.outcomes >= min_results and rest.outcomes >= min_results:
        worse = canary.error_rate() - rest.error_rate()
        if worse > max_error_delta:
            reasons.append(
                f"error rate above the rest by {worse:.2f} (> {max_error_delta:.2f}; "
                f"canary offline {canary.errors} times)"
            )
    if not compared and not reasons:
        reasons.append(f"too few results to compare (canary {canary.results}, rest {rest.results})")
        return CanaryVerdict(False, reasons, canary.summary(), rest.summary(), conclusive=False)
    return CanaryVerdict(not reasons, reasons, canary.summary(), rest.summary())
