"""Wording that the daemon's logs and the commands' reports share."""


def counted(n: int, noun: str) -> str:
    """``n`` and its noun, singular for one ("1 message", "2 messages")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
