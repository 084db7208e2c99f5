"""Wording that the daemon's logs and the commands' reports share."""


def listed(items) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def counted(n: int, noun: str) -> str:
    """``n`` and its noun, singular for one ("1 message", "2 messages")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
