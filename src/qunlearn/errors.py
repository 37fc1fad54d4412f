"""User-facing errors: each names what is wrong and how to fix it."""

import contextlib
import traceback


class QunlearnError(Exception):
    """An error caused by input (config, data, checkpoint) that the user can fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")


class ConfigErrors(QunlearnError):
    """Every mistake found in one config at once, each its own QunlearnError (one line: key, problem, fix)."""

    def __init__(self, errors: list[QunlearnError]):
        self.errors = errors
        super().__init__("\n".join(error.problem + (f" — fix: {error.fix}" if error.fix else "") for error in errors))


def explained(error: QunlearnError) -> str:
    """What the terminal shows: an `error:` line and a `fix:` line per mistake."""
    return "\n".join(f"error: {each.problem}" + (f"\nfix: {each.fix}" if each.fix else "")
                     for each in getattr(error, "errors", [error]))


@contextlib.contextmanager
def stop_on_error():
    """Around the Snakefile's start-up checks: a QunlearnError ends the run with its `error:`/`fix:` lines and exit
    status 1, without Snakemake's traceback (the traceback goes to Snakemake's debug log: shown with --verbose)."""
    try:
        yield
    except QunlearnError as error:
        from snakemake.logging import logger  # only ever entered while Snakemake parses the workflow

        logger.debug("".join(traceback.format_exception(error)))
        logger.error(explained(error))
        raise SystemExit(1) from None  # Snakemake lets SystemExit through without printing anything
