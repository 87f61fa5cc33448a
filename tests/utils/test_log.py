"""The one logger (`paddleseg_ext.utils.log`): rank 0 prints, errors print on every rank, `--verbose` (every
command's parser) adds debug lines and every rank, for that command only; `quiet_paddle` hides what Paddle
reports for itself (Python warnings, lines its C++ code writes to file descriptor 2) unless a block fails."""
import os
import warnings

import pytest

from paddleseg_ext.cli.common import parser, run_cli
from paddleseg_ext.utils import log


def _lines(rank, monkeypatch, capfd):
    monkeypatch.setenv("PADDLE_TRAINER_ID", str(rank))
    capfd.readouterr()
    log.info("info")
    log.warning("careful")
    log.info("mine", every_rank=True)
    log.debug("details")
    log.error("broken")
    return capfd.readouterr()


def test_rank_zero_prints_others_only_their_own_results_and_errors(monkeypatch, capfd):
    first = _lines(0, monkeypatch, capfd)
    assert first.out == "info\nmine\n" and first.err == "warning: careful\nerror: broken\n"
    other = _lines(1, monkeypatch, capfd)
    assert other.out == "mine\n" and other.err == "error: broken\n"
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    log.info("the loop's own rank wins", rank=0)
    log.info("not shown", rank=1)
    assert capfd.readouterr().out == "the loop's own rank wins\n"


def test_verbose_flag_of_a_command_is_its_own(monkeypatch, capfd):
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")

    def main(argv):
        parser("a command").parse_args(argv)
        log.debug("debug line")
        log.info("rank 1 line")

    assert run_cli(main, ["--verbose"]) == 0
    assert capfd.readouterr().out == "debug line\nrank 1 line\n"
    assert not log.is_verbose()  # restored after the command
    assert run_cli(main, []) == 0
    assert capfd.readouterr().out == ""


def test_quiet_paddle_hides_native_lines_and_warnings_unless_the_block_fails(capfd):
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with log.quiet_paddle():
            os.write(2, b"W1207 eager_utils.cc] a glog line\n")
            warnings.warn("a PIR warning")
    assert capfd.readouterr().err == "" and not caught
    with pytest.raises(RuntimeError, match="traced badly"):
        with log.quiet_paddle():
            os.write(2, b"native context of the failure\n")
            raise RuntimeError("traced badly")
    assert "native context of the failure" in capfd.readouterr().err
    with log.quiet_paddle(show=True):
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"
