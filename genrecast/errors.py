"""What every part of genrecast shares about failing: one error type for problems the user can fix."""


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""


def one_line(text: object) -> str:
    """An error's (or a file name's) text on one line: a file name may hold a newline, and a reader takes one line
    for one error or one result."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")
