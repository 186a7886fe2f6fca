"""Following a job until it ends: its new log lines and a progress bar.

The status reply carries the tail of the job's log (the app keeps LOG_TAIL_LINES lines); the lines not shown yet
are those after the longest overlap of the tail shown last with the new one. On a terminal the progress bar
(percentage, a fraction from 0 to 1, shown in %) and the status sit under the log; elsewhere (a pipe, a file, CI)
each change of status or progress is one line.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from dmjob.client import Api

FINAL = frozenset({"completed", "failed", "removed"})
FIRST_INTERVAL, MAX_INTERVAL, GROWTH = 0.25, 2.0, 1.5


def new_lines(shown: list[str], tail: list[str]) -> list[str]:
    """The lines of `tail` after what `shown` (the tail shown last) already had."""
    if tail[: len(shown)] == shown:
        return tail[len(shown) :]
    for overlap in range(min(len(shown), len(tail)), 0, -1):
        if shown[-overlap:] == tail[:overlap]:
            return tail[overlap:]
    return tail


def _percent(status: dict) -> str:
    fraction = status.get("percentage")
    return f" {round(fraction * 100)}%" if isinstance(fraction, (int, float)) else ""


class Follower:
    """Polls a job's status until it ends, showing what changed."""

    def __init__(
        self,
        api: Api,
        uid: str,
        console: Console,
        *,
        show_log: bool,
        show_progress: bool,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.api, self.uid, self.console = api, uid, console
        self.show_log, self.show_progress, self.sleep = show_log, show_progress, sleep
        self._shown: list[str] = []
        self._said: tuple | None = None

    def _print_log(self, status: dict, progress: Progress | None) -> None:
        if not self.show_log:
            return
        tail = [line for line in status.get("log") or [] if isinstance(line, str)]
        target = progress.console if progress is not None else self.console
        for line in new_lines(self._shown, tail):
            target.print(line, markup=False, highlight=False, soft_wrap=True)
        self._shown = tail

    def _say(self, status: dict) -> None:
        """Without a terminal: one line per change of status or progress."""
        said = (status.get("status"), status.get("percentage"))
        if said != self._said and self.show_progress:
            self.console.print(f"{status.get('status')}{_percent(status)}", markup=False, highlight=False)
        self._said = said

    def run(self) -> dict:
        live = self.show_progress and self.console.is_terminal
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False, disable=not live) as progress:
            task = progress.add_task("starting", total=1.0)
            interval, last = FIRST_INTERVAL, None
            while True:
                status = self.api.status(self.uid)
                self._print_log(status, progress if live else None)
                if live:
                    fraction = status.get("percentage")
                    progress.update(
                        task,
                        description=str(status.get("status")),
                        completed=fraction if isinstance(fraction, (int, float)) else 0.0,
                    )
                else:
                    self._say(status)
                if status.get("status") in FINAL:
                    return status
                seen = (status.get("status"), status.get("percentage"), len(status.get("log") or []))
                interval = FIRST_INTERVAL if seen != last else min(MAX_INTERVAL, interval * GROWTH)
                last = seen
                self.sleep(interval)
