"""Errors the CLI maps to exit codes: ConfigError -> 2 (usage / config), RunError -> 1 (runtime)."""


class ConfigError(ValueError):
    """A user-facing configuration or input error. Each line of ``lines`` is one problem."""

    def __init__(self, *lines: str):
        self.lines = [line for line in lines if line]
        super().__init__("\n".join(self.lines))


class RunError(RuntimeError):
    """A runtime failure of a job (exit code 1)."""
