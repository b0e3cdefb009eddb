"""Failures the command expects, each with the exit code scripts can rely on."""

import enum


class Exit(enum.IntEnum):
    OK = 0
    OTHER = 1
    USAGE = 2
    REFUSED = 3  # forbidden, refused code, bad token, rejected or revoked
    NOT_FOUND = 4
    TIMED_OUT = 5  # a wait ran out, a request timed out, credentials expired


class CliError(Exception):
    """One line on stderr (`breakglass: code: message`) and an exit code; never a traceback."""

    def __init__(self, code: str, message: str, exit_code: Exit = Exit.OTHER) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


# HTTP status of an API error -> exit code.
EXIT_FOR_STATUS = {
    400: Exit.USAGE,
    401: Exit.REFUSED,
    403: Exit.REFUSED,
    404: Exit.NOT_FOUND,
}
