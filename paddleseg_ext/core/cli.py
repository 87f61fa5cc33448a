"""Command-line plumbing shared by the launch scripts: one-line errors for user mistakes."""
import sys

from ..utils.errors import UserInputError


def run_cli(main, argv=None):
    """Call `main(argv)`; a user mistake prints `error: <message>` (no traceback) and exits 2."""
    from .train import TrainingDiverged

    try:
        rc = main(argv)
    except UserInputError as e:
        print("error: {}".format(e), file=sys.stderr, flush=True)
        return 2
    except TrainingDiverged as e:
        print("error: {}".format(e), file=sys.stderr, flush=True)
        return 3
    except OSError as e:
        # unwritable output folder, missing file, full disk: name the path instead of a traceback
        where = e.filename if getattr(e, "filename", None) else ""
        print("error: {}{}".format(e.strerror or e, ": {}".format(where) if where else ""), file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    return 0 if rc is None else rc
