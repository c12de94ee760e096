"""When a training session stops early: SIGINT/SIGTERM routed to a flag, and the reasons' messages.

Every rank must stop at the same step, so each one votes a number (`STOP_TIME_LIMIT`, `STOP_INTERRUPTED`,
0 to go on) and the strongest vote of any rank wins.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_TIME_LIMIT, STOP_INTERRUPTED = 1, 2


class StopFlag:
    """Set by SIGINT/SIGTERM during the loop (the step in progress finishes, a checkpoint is written);
    a second SIGINT interrupts at once with KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: Any) -> None:
        """The signal handler: takes the signal number and frame, as `signal.signal` passes them."""
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `flag` (main thread only), restoring the previous handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, flag.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def agreed_stop(flag: StopFlag, out_of_time: bool, device: Any) -> int:
    """This rank's vote (interrupted beats time limit beats 0) maxed over all ranks: the stop reason
    every rank acts on at this step. `device` holds the reduced tensor (the process group's device)."""
    import torch

    from rvos_cli.engine import distributed as D

    vote = STOP_INTERRUPTED if flag.requested else STOP_TIME_LIMIT if out_of_time else 0
    return int(D.all_reduce_max(torch.tensor([float(vote)], device=device)).item())


def stop_message(reason: str, step: int) -> str:
    """The summary's message for a stop `reason` ("max_steps", "time_limit", "interrupted") after global
    step `step`; "" for other reasons."""
    return {
        "max_steps": f"stopped after step {step} (--max-steps)",
        "time_limit": f"time limit reached after step {step}",
        "interrupted": f"interrupted after step {step}",
    }.get(reason, "")
