"""What every part of genrecast shares about failing: one error type for problems the user can fix."""


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""
