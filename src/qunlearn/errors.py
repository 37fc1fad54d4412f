"""User-facing errors: each names what is wrong and how to fix it."""


class QunlearnError(Exception):
    """An error caused by input (config, data, checkpoint) that the user can fix."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  fix: {fix}")
