"""The one logger of the commands and loops (a standard `logging` logger named ``paddleseg_ext``).

- `info` lines go to stdout, `warning` (``warning: ``) and `error` (``error: ``) lines to stderr, as they
  are written: no time stamp or level tag, so what users see stays one plain line.
- Rank-aware: under ``paddle.distributed.launch`` only rank 0 prints (the rank is read from
  ``PADDLE_TRAINER_ID``, as Paddle itself does), unless a message says `every_rank` (per-rank results)
  or the run is verbose; errors always print.
- `--verbose` (every command, `cli.common.parser`) calls `set_verbose(True)`: `debug` lines appear, every
  rank prints, and the Paddle-internal warnings silenced by `quiet_paddle` are shown.
"""
import contextlib
import logging
import os
import sys
import tempfile
import warnings

logger = logging.getLogger("paddleseg_ext")
logger.propagate = False  # the root logger's handlers (e.g. Paddle's) would print each line twice

_PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: "}


def rank():
    """This process's rank under ``paddle.distributed.launch`` (0 otherwise)."""
    try:
        return int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    except ValueError:
        return 0


class _Handler(logging.Handler):
    """Writes to the current sys.stdout / sys.stderr (looked up per line, so redirections such as
    pytest's capture see it), flushed at once."""

    def emit(self, record):
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        stream.write(_PREFIX.get(record.levelno, "") + record.getMessage() + "\n")
        stream.flush()


class _RankFilter(logging.Filter):
    def filter(self, record):
        if record.levelno >= logging.ERROR or is_verbose() or getattr(record, "every_rank", False):
            return True
        given = getattr(record, "rank", None)
        return (rank() if given is None else given) == 0


if not logger.handlers:
    logger.addHandler(_Handler())
    logger.addFilter(_RankFilter())
    logger.setLevel(logging.INFO)


def set_verbose(on):
    """Switch debug output (and every rank's output) on or off; returns the previous setting."""
    old = is_verbose()
    logger.setLevel(logging.DEBUG if on else logging.INFO)
    return old


def is_verbose():
    return logger.level == logging.DEBUG


def debug(message):
    logger.debug(message)


def info(message, every_rank=False, rank=None):
    """A line on stdout, on rank 0 only unless `every_rank` (a rank's own result); `rank`: the caller's
    rank where it knows it (default: the launcher's)."""
    logger.info(message, extra={"every_rank": every_rank, "rank": rank})


def warning(message, every_rank=False, rank=None):
    """``warning: <message>`` on stderr (ranks as in `info`)."""
    logger.warning(message, extra={"every_rank": every_rank, "rank": rank})


def error(message):
    """``error: <message>`` on stderr, on every rank."""
    logger.error(message)


@contextlib.contextmanager
def quiet_paddle(show=False):
    """Silence what Paddle reports for itself while a block runs (not for the user: PIR and deprecation
    `warnings`, glog lines that its C++ code writes to file descriptor 2). Python warnings are ignored
    inside the block only; the C++ lines are captured and written out after all when the block raises.
    Verbose runs (or `show`) see everything."""
    if show or is_verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
