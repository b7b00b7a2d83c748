"""Canary verdicts that one bin cannot decide (issue 29, item 1), judged by the real supervisor
on a real fleet database: each bin one vote against the median of the others, canary results
counted only when stamped with the new model, leave-one-out before acting, and a minimum of
canary bins before a promotion. No key: the verdict is recorded, nothing is signed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.canary.judging import judge_rollout
from ecolens.fleet.canary.records import StagedRollout, load_rollout, record_rollout
from ecolens.fleet.canary.supervisor import CanarySupervisor
from ecolens.fleet.rollout.publish import opener
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.database import Database

NEW, OLD = "ab" * 32, "cd" * 32


class Fleet:
    """A fleet database with one staged rollout whose window has just ended."""

    def __init__(self, folder: Path, canaries: tuple[str, ...], window_over: bool = True, **limits) -> None:
        folder.mkdir(exist_ok=True)
        self.database: Database = open_database(f"sqlite:///{folder / 'fleet.db'}")
        self.now_ms = int(time.time() * 1000)
        started = self.now_ms - (60_000 if window_over else 10_000)
        self.rollout = StagedRollout(
            "r1", NEW, "m", "2", canaries, started, 30.0 if window_over else 600.0, 10, **limits
        )
        record_rollout(self.database, self.rollout)
        self.rows = 0

    def results(self, device: str, count: int, plastic_share: float, sha: str = OLD) -> None:
        rows = []
        for n in range(count):
            label = "plastic" if n < round(count * plastic_share) else "non_plastic"
            seen = self.rollout.started_ms + 1000 + self.rows
            rows.append(
                (f"e{self.rows}", device, seen, seen, label, 0.9, False, 5.0, 1, "m", "2", sha, "{}", n)
            )
            self.rows += 1
        self.database.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    def offline(self, device: str, times: int) -> None:
        for n in range(times):
            at = self.rollout.started_ms + 2000 + n
            self.database.execute("INSERT INTO status_events VALUES (?, ?, ?)", (device, at, "offline"))

    def decide(self) -> StagedRollout:
        """The real supervisor's pass: the recorded state and verdict."""
        supervisor = CanarySupervisor(lambda: self.database, opener(BrokerSection()), "ecolens", None)
        supervisor.check(self.database)
        decided = load_rollout(self.database, "r1")
        assert decided is not None
        return decided


@pytest.fixture
def rest_of_fleet():
    """Three ordinary bins at a 30 % plastic share."""

    def fill(fleet: Fleet) -> None:
        for device in ("bin-r1", "bin-r2", "bin-r3"):
            fleet.results(device, 40, 0.3)

    return fill


def test_one_flooding_bin_cannot_roll_back_a_good_canary(tmp_path, rest_of_fleet):
    """The attack: a bin sending 30 "plastic" results a second outweighed every pooled count."""
    fleet = Fleet(tmp_path, ("bin-c1", "bin-c2", "bin-c3"))
    rest_of_fleet(fleet)
    fleet.results("bin-evil", 3000, 1.0)
    for canary in fleet.rollout.canaries:
        fleet.results(canary, 30, 0.3, NEW)
    decided = fleet.decide()
    assert decided.state == "healthy", decided.verdict
    assert decided.verdict["rest"]["bin-evil"]["results"] == 3000
    assert [v["vote"] for v in decided.verdict["canary"].values()] == ["healthy"] * 3


def test_one_flooding_bin_cannot_make_a_one_class_model_look_healthy(tmp_path, rest_of_fleet):
    """The bin answers like the bad model (all plastic): the median of the other bins does not move,
    and the worse verdict is decided during the window, without waiting for its end."""
    fleet = Fleet(tmp_path, ("bin-c1", "bin-c2", "bin-c3"), window_over=False)
    rest_of_fleet(fleet)
    fleet.results("bin-evil", 3000, 1.0)
    for canary in fleet.rollout.canaries:
        fleet.results(canary, 20, 1.0, NEW)
    decided = fleet.decide()
    assert decided.state == "worse" and decided.verdict["decisive"], (
        decided.verdict
    )  # no key: not rolled back
    assert decided.verdict["reasons"][0] == "bin-c1: plastic share differs from the rest by 0.70 (> 0.25)"


def test_a_canary_that_never_runs_the_model_is_no_evidence_and_nothing_is_promoted(tmp_path, rest_of_fleet):
    """The canary fetched the chunks but kept its old model and sent ordinary results: they are
    stamped with the old model, so it counts as silent; two canaries that answered are fewer than
    min_canaries (3), so the healthy-looking verdict promotes nothing."""
    fleet = Fleet(tmp_path, ("bin-c1", "bin-c2", "bin-evil"))
    rest_of_fleet(fleet)
    fleet.results("bin-evil", 120, 0.3, OLD)
    for canary in ("bin-c1", "bin-c2"):
        fleet.results(canary, 30, 0.3, NEW)
    decided = fleet.decide()
    assert decided.state == "inconclusive", decided.verdict
    assert decided.verdict["canary"]["bin-evil"] == {
        **decided.verdict["canary"]["bin-evil"],
        "results": 0,
        "vote": "worse",
    }
    assert "only 2 canary bins answered like the rest (< min_canaries 3)" in decided.verdict["reasons"]


def test_one_lying_canary_cannot_decide_but_three_honest_ones_outvote_it(tmp_path, rest_of_fleet):
    """A canary that stamps results with the new model without running it still has one vote: among
    three canaries it cannot make the bad model healthy, and a verdict it could swing is not acted
    on (reported worse, not rolled back); with four canaries the honest three decide."""
    fleet = Fleet(tmp_path, ("bin-c1", "bin-c2", "bin-evil"))
    rest_of_fleet(fleet)
    fleet.results("bin-evil", 200, 0.3, NEW)
    for canary in ("bin-c1", "bin-c2"):
        fleet.results(canary, 30, 1.0, NEW)
    decided = fleet.decide()
    assert decided.state == "worse" and not decided.verdict["decisive"], decided.verdict
    assert decided.verdict["reasons"][-1].startswith("one bin decides this verdict: without bin-c1")

    fleet = Fleet(tmp_path / "four", ("bin-c1", "bin-c2", "bin-c3", "bin-evil"))
    rest_of_fleet(fleet)
    fleet.results("bin-evil", 200, 0.3, NEW)
    for canary in ("bin-c1", "bin-c2", "bin-c3"):
        fleet.results(canary, 30, 1.0, NEW)
    assert fleet.decide().verdict["decisive"]


def test_one_canary_or_one_other_bin_decides_nothing(tmp_path):
    """A canary against one other bin: removing either leaves nothing to compare, so a bad model is
    reported but not rolled back automatically, and a good one is not promoted."""
    fleet = Fleet(tmp_path, ("bin-c1",))
    fleet.results("bin-r1", 40, 0.3)
    fleet.results("bin-c1", 40, 1.0, NEW)
    decided = fleet.decide()
    assert decided.state == "worse" and not decided.verdict["decisive"], decided.verdict

    fleet = Fleet(tmp_path / "good", ("bin-c1",))
    fleet.results("bin-r1", 40, 0.3)
    fleet.results("bin-c1", 40, 0.3, NEW)
    assert fleet.decide().state == "inconclusive"


def test_canaries_that_keep_going_offline_are_judged_before_they_answer_enough(tmp_path, rest_of_fleet):
    """Errors are compared per bin on results plus errors: canaries that crash on most items are
    worse at once; an offline before the rollout began, or once in many results, is not."""
    fleet = Fleet(tmp_path, ("bin-c1", "bin-c2"), window_over=False)
    rest_of_fleet(fleet)
    fleet.offline("bin-r1", 1)  # the rest has an error too
    fleet.database.execute(
        "INSERT INTO status_events VALUES (?, ?, ?)", ("bin-c1", fleet.rollout.started_ms - 5000, "offline")
    )
    for canary in ("bin-c1", "bin-c2"):
        fleet.results(canary, 2, 0.3, NEW)
    assert judge_rollout(fleet.database, fleet.rollout, fleet.now_ms) is None  # too few results
    for canary in ("bin-c1", "bin-c2"):
        fleet.offline(canary, 8)
    verdict = judge_rollout(fleet.database, fleet.rollout, fleet.now_ms)
    assert verdict is not None and verdict.outcome == "worse" and verdict.decisive
    assert verdict.canary["bin-c1"]["errors"] == 8 and verdict.canary["bin-c1"]["error_rate"] == 0.8
    assert verdict.reasons[0] == "bin-c1: error rate above the rest by 0.80 (> 0.10; offline 8 times)"

    for canary in ("bin-c1", "bin-c2"):
        fleet.results(canary, 200, 0.3, NEW)  # the same errors over many results: within the threshold
    assert judge_rollout(fleet.database, fleet.rollout, fleet.now_ms) is None
