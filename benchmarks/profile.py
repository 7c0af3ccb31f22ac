"""Sample a worker process with py-spy during a drain and summarise where its CPU time goes.

py-spy (in the project's dev tools) records collapsed stacks ("frame;frame;... count", idle
samples left out); the summary lists the functions with the most samples on top of the stack
(self) and anywhere in it (inclusive), as percentages of all non-idle samples.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.common import STATE

# Frames every sample of the main thread sits under: no information, left out of "inclusive".
ROOT_FRAMES = ("_run_module_as_main ", "_run_code ", "<module> ", "run_async ", "main (")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, rate: int = 500) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy not found")
        self.exe = exe
        self.rate = rate
        self.out = STATE / "profile-w2.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def attach(self, pid: int) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        self.out.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                self.exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(self.out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(STATE / "py-spy.log", "wb"),  # noqa: SIM115 - lives with the process
        )

    def detach(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarise(
    path: Path, top: int = 10
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, top self, top inclusive) from a py-spy raw file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            if not f.startswith(ROOT_FRAMES):
                inclusive[f] += count
    if not total:
        return 0, [], []
    return (
        total,
        [(f, 100 * c / total) for f, c in own.most_common(top)],
        [(f, 100 * c / total) for f, c in inclusive.most_common(top * 2)],
    )
