"""Canary statistics: what each bin did during a rollout's window, and the judgement (pure
functions on counts; fleet/canary applies it).

Each bin has one vote, whatever it sends: a canary bin is compared with the median of the other
bins' per-bin figures, so one bin flooding results cannot move "the rest"; the canaries' votes
decide by majority; and a verdict is acted on only when removing any single bin (canary or not)
would leave it unchanged (leave-one-out), so no one bin's credentials decide a rollback or a
promotion. A promotion also needs ``min_canaries`` canary bins that answered with the new model.
What stays possible: a canary bin that stamps its results with the new model without running it
still casts its one vote.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any

WORSE, HEALTHY, UNDECIDED = "worse", "healthy", "undecided"


@dataclass
class BinFigures:
    """What one bin did during the window (a canary: only its results from the new model)."""

    results: int = 0
    uncertain: int = 0
    plastic: int = 0
    errors: int = 0  # times the bin went offline (a crash, a kill, a lost broker, a stop)

    def add_many(self, label: str, uncertain: bool, count: int) -> None:
        self.results += count
        self.uncertain += count if uncertain else 0
        self.plastic += count if label == "plastic" else 0

    @property
    def outcomes(self) -> int:
        """Results plus errors: a bin that crashes before it answers still counts towards a
        comparison of errors."""
        return self.results + self.errors

    @property
    def share(self) -> float:
        return self.plastic / self.results if self.results else 0.0

    @property
    def uncertain_rate(self) -> float:
        return self.uncertain / self.results if self.results else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.outcomes if self.outcomes else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "plastic_share": round(self.share, 3),
            "uncertain_rate": round(self.uncertain_rate, 3),
            "errors": self.errors,
            "error_rate": round(self.error_rate, 3),
        }


@dataclass(frozen=True)
class Thresholds:
    min_results: int = 10  # per bin
    max_share_delta: float = 0.25
    max_uncertain_delta: float = 0.15
    max_error_delta: float = 0.1
    min_canaries: int = 3  # canary bins that answered, for a promotion


@dataclass
class CanaryVerdict:
    outcome: str  # WORSE, HEALTHY or UNDECIDED (too early, or nothing to compare with)
    decisive: bool  # no single bin's removal changes the outcome
    promotable: bool  # healthy, decisive, and enough canary bins answered
    reasons: list[str]
    canary: dict[str, Any]  # per canary bin: figures and vote
    rest: dict[str, Any]  # per other bin: figures

    @property
    def healthy(self) -> bool:
        return self.promotable


Votes = dict[str, tuple[str | None, list[str]]]


def vote(
    figures: BinFigures, rest: list[BinFigures], t: Thresholds, over: bool
) -> tuple[str | None, list[str]]:
    """One canary bin's vote against the median of the other bins: WORSE, HEALTHY, or None while
    it has too few results (at the end of the window too few results is WORSE: a silent canary)."""
    answered = [r for r in rest if r.results >= t.min_results]
    failed = [r for r in rest if r.outcomes >= t.min_results]
    reasons = []
    if figures.results >= t.min_results and answered:
        delta = abs(figures.share - median(r.share for r in answered))
        if delta > t.max_share_delta:
            reasons.append(f"plastic share differs from the rest by {delta:.2f} (> {t.max_share_delta:.2f})")
        worse = figures.uncertain_rate - median(r.uncertain_rate for r in answered)
        if worse > t.max_uncertain_delta:
            reasons.append(f"uncertain rate above the rest by {worse:.2f} (> {t.max_uncertain_delta:.2f})")
    if figures.outcomes >= t.min_results and failed:
        worse = figures.error_rate - median(r.error_rate for r in failed)
        if worse > t.max_error_delta:
            reasons.append(
                f"error rate above the rest by {worse:.2f} (> {t.max_error_delta:.2f}; "
                f"offline {figures.errors} times)"
            )
    if reasons:
        return WORSE, reasons
    if figures.results >= t.min_results and answered:
        return HEALTHY, []
    if over:
        if not figures.results:
            return WORSE, ["no results from the new model"]
        return WORSE, [f"too few results from the new model ({figures.results} < {t.min_results})"]
    return None, []


def outcome(
    canaries: dict[str, BinFigures], rest: dict[str, BinFigures], t: Thresholds, over: bool
) -> tuple[str, Votes]:
    """WORSE when a strict majority of the canary bins votes worse; HEALTHY at the end of the
    window when every canary bin voted and most are not worse; else UNDECIDED."""
    votes = {device: vote(figures, list(rest.values()), t, over) for device, figures in canaries.items()}
    worse = sum(1 for v, _ in votes.values() if v == WORSE)
    if canaries and worse * 2 > len(canaries):
        return WORSE, votes
    if canaries and over and all(v is not None for v, _ in votes.values()):
        return HEALTHY, votes
    return UNDECIDED, votes


def judge(
    canaries: dict[str, BinFigures], rest: dict[str, BinFigures], t: Thresholds, over: bool
) -> CanaryVerdict:
    """The outcome, and whether it is decisive: the same without any one bin (leave-one-out)."""
    result, votes = outcome(canaries, rest, t, over)
    reasons = [
        f"{device}: {reason}" for device, (v, why) in sorted(votes.items()) if v == WORSE for reason in why
    ]
    swing = None
    if result != UNDECIDED:
        for device in sorted({*canaries, *rest}):
            without = outcome(
                {d: f for d, f in canaries.items() if d != device},
                {d: f for d, f in rest.items() if d != device},
                t,
                over,
            )[0]
            if without != result:
                swing = device
                reasons.append(f"one bin decides this verdict: without {device} it would be {without}")
                break
    answered = sum(1 for v, _ in votes.values() if v == HEALTHY)
    promotable = result == HEALTHY and swing is None and answered >= t.min_canaries
    if result == HEALTHY and swing is None and not promotable:
        reasons.append(
            f"only {answered} canary bins answered like the rest (< min_canaries {t.min_canaries})"
        )
    if result == UNDECIDED and over:
        reasons.append("too few bins with enough results to compare")
    return CanaryVerdict(
        outcome=result,
        decisive=result != UNDECIDED and swing is None,
        promotable=promotable,
        reasons=reasons,
        canary={d: {**f.summary(), "vote": votes[d][0] or "-"} for d, f in sorted(canaries.items())},
        rest={d: f.summary() for d, f in sorted(rest.items())},
    )
