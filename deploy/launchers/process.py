"""Detached processes with pid files under the state folder, so `up` can find what is already running."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @classmethod
    def all(cls, state_dir: Path) -> list["ManagedProcess"]:
        """Every process with a pid file in the state folder, alive or not."""
        return [cls(path.stem, state_dir) for path in sorted((state_dir / "pids").glob("*.pid"))]

    def pid(self) -> int | None:
        """The pid if that process is alive (and not a zombie), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            # A recycled pid would point at an unrelated process; the start time pins ours.
            recorded = self.pid_file.stat().st_mtime
            if proc.create_time() > recorded + 5:
                return None
            return pid
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def tail(self, lines: int = 25) -> str:
        """The end of the process's log: why it stopped, when it stopped on its own."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
                return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def start(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
              user: str | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, user=user, start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20.0, stop_signal: int = signal.SIGTERM) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout, stop_signal)
        self.pid_file.unlink(missing_ok=True)


def terminate(pid: int, timeout: float, stop_signal: int = signal.SIGTERM) -> None:
    """Signal the process group so it drains; SIGKILL whatever is left after `timeout`."""
    try:
        proc = psutil.Process(pid)
        group = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, stop_signal)
    except (ProcessLookupError, PermissionError):
        proc.send_signal(stop_signal)
    _, alive = psutil.wait_procs(group, timeout=timeout)
    for straggler in alive:
        try:
            straggler.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def wait_until(check, *, timeout: float, what: str, interval: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # readiness probes fail in many ways while a server boots
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s" + (f": {last_error}" if last_error else ""))
