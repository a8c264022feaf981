"""Running test work in threads that start together."""

from __future__ import annotations

import threading
from typing import Callable, Sequence


def run_together(work: Callable[..., object], calls: Sequence[tuple], timeout: float = 30.0) -> None:
    """Run ``work(*args)`` for each ``args`` in ``calls``, one thread each, released at
    once by a barrier; wait for all, then re-raise the first error any of them met."""
    start = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(args: tuple) -> None:
        try:
            start.wait(timeout)
            work(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(args,)) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
