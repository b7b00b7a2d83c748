"""A rejected message's reason is a sentence for people; metrics and counters get its short,
bounded kind (core.wire.RejectionKind), set where the refusal was made. No prometheus_client
here: the subscriber counts kinds without the extra."""

from __future__ import annotations

from ecolens.core.wire import RejectionKind
from ecolens.fleet.storage.store import Rejected

# every label the rejected-by-reason counter can carry, "other" last
REASON_KINDS = tuple(kind.value for kind in RejectionKind)


def reason_kind(rejected: Rejected) -> str:
    """The metrics label of a refused message."""
    return rejected.kind if rejected.kind in REASON_KINDS else RejectionKind.OTHER.value
