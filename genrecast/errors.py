"""What every part of genrecast shares about failing: one error type for problems the user can fix."""


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""


def one_line(text: object) -> str:
    """An error's (or a file name's) text on one line: a file name may hold a newline, and a reader takes one line
    for one error or one result. Other control characters are escaped too: a tab would split a result's columns,
    and a NUL or an escape sequence does not show as what it is."""
    return "".join(ESCAPES.get(c, f"\\x{ord(c):02x}") if ord(c) < 32 or c == "\x7f" else c for c in str(text))


ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
