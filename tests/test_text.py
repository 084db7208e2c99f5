"""A count and its noun, as the daemon's log and evaluate's report write them."""

from genrecast.text import counted


def test_one_is_singular_and_every_other_count_plural():
    assert [counted(n, "audio file") for n in (0, 1, 2)] == ["0 audio files", "1 audio file", "2 audio files"]


def test_listed():
    from genrecast.text import listed

    assert [listed(x) for x in ([], ["a"], ["a", "b"], ("a", "b", "c"))] == ["", "a", "a and b", "a, b and c"]
