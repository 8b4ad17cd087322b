"""A total deadline for one attempt: every wait inside it (budget, slots, retries) must end before it.

`attempt_deadline(seconds)` sets it for the block (nested blocks keep the earlier deadline);
`remaining()` is the time left (None: no deadline).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("attempt_deadline", default=None)


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[float]:
    end = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(end if current is None else min(current, end))
    try:
        yield end
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    end = _deadline.get()
    return None if end is None else end - time.monotonic()
