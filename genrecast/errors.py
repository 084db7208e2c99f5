"""What every part of genrecast shares about failing: one error type for problems the user can fix."""


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""


def one_line(exc: BaseException) -> str:
    """An error's text on one line: a file name may hold a newline, and a reader takes one line for one error."""
    return str(exc).replace("\r", "\\r").replace("\n", "\\n")
