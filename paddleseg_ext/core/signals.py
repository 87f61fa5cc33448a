"""Stopping a training run cleanly on SIGTERM / SIGINT (never half-way through a checkpoint write)."""
import contextlib
import os
import signal
import threading


class Interrupted(Exception):
    """Raised in the main process when a stop signal arrived outside a deferred block."""


class StopSignals:
    """SIGTERM / SIGINT stop training with a message naming the last complete checkpoint.

    Inside `deferred()` (checkpoint writes) a signal only takes effect once the block is done, so a
    stop request never interrupts a write half-way (a kill -9 cannot be deferred: the writes are atomic).
    DataLoader workers (`worker_signals`) ignore SIGINT and exit quietly (status 0) on SIGTERM: Ctrl-C or
    a scheduler's SIGTERM reaches the whole process group, and a worker killed by the signal would make
    Paddle raise in the main process (SIGCHLD) before the checkpoint is safe and the message printed.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.sig = None
        self._depth = 0
        self._old = {}
        self._pid = os.getpid()

    def install(self):
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def restore(self):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            return
        self.sig = signum
        if self._depth == 0:
            raise Interrupted()

    @staticmethod
    def worker_signals(worker_id=None):
        """DataLoader `worker_init_fn`: leave SIGINT to the main process, end quietly on SIGTERM."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))

    @contextlib.contextmanager
    def deferred(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self.sig is not None:
            raise Interrupted()
