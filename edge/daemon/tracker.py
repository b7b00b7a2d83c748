"""The item state machine: an item appears, settles, is classified on a few still frames,
and must leave before the next item counts. One result per item, never one per frame.

    idle --present--> arriving --still for settle_s--> collecting --N frames--> done
      ^                  |  (moves again: back to arriving)                       |
      +---- empty for clear_s ---------------------------------------------------+
"""

from __future__ import annotations

from enum import Enum

from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.motion import Observation


class State(str, Enum):
    IDLE = "idle"
    ARRIVING = "arriving"
    COLLECTING = "collecting"
    DONE = "done"


class Step(str, Enum):
    NOTHING = "nothing"
    COLLECT = "collect"  # classify this frame as part of the current item
    COMPLETE = "complete"  # classify this frame, then combine and publish the item
    ABANDON = "abandon"  # drop the frames collected so far
    ABSORB = "absorb"  # item present too long: learn it into the background


class ItemTracker:
    def __init__(self, detect: DetectSection) -> None:
        self.detect = detect
        self.state = State.IDLE
        self.collected = 0
        self._since = 0.0
        self._still_since: float | None = None
        self._clear_since: float | None = None

    @property
    def learning(self) -> bool:
        """The background may adapt only while the scene is empty."""
        return self.state == State.IDLE

    def update(self, obs: Observation, t: float) -> Step:
        d = self.detect
        if self.state == State.IDLE:
            if obs.present:
                self._enter(State.ARRIVING, t)
            return Step.NOTHING
        if not obs.present:
            self._still_since = None
            self._clear_since = t if self._clear_since is None else self._clear_since
            if t - self._clear_since >= d.clear_s:
                abandoned = self.state == State.COLLECTING
                self._enter(State.IDLE, t)
                return Step.ABANDON if abandoned else Step.NOTHING
            return Step.NOTHING
        self._clear_since = None
        if t - self._since >= d.max_item_s:
            self._enter(State.IDLE, t)
            return Step.ABSORB
        if self.state == State.DONE:
            return Step.NOTHING
        still = obs.motion <= d.still_fraction
        if self.state == State.COLLECTING:
            if not still:
                self.state, self.collected, self._still_since = State.ARRIVING, 0, None
                return Step.ABANDON
            self.collected += 1
            if self.collected >= d.frames_per_item:
                self.state = State.DONE
                return Step.COMPLETE
            return Step.COLLECT
        # ARRIVING
        if not still:
            self._still_since = None
            return Step.NOTHING
        self._still_since = t if self._still_since is None else self._still_since
        if t - self._still_since >= d.settle_s:
            self.state, self.collected = State.COLLECTING, 0
            return self.update(obs, t)
        return Step.NOTHING

    def _enter(self, state: State, t: float) -> None:
        self.state = state
        self.collected = 0
        self._since = t
        self._still_since = None
        self._clear_since = None
