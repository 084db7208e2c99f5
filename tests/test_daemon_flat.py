"""A live source that sends digital silence for a minute is named in the log: a muted or wrong input read as
`silence` for as long as it ran, with nothing said (a kitchen microphone review)."""

from __future__ import annotations

import logging

import numpy as np
from daemon_helpers import hand_fed_run
from genrecast.daemon.pipeline import Window
from genrecast.daemon.service import FLAT_SECONDS
from tiny_model import tiny_spec


def test_a_minute_of_digital_silence_is_said_once_and_again_after_sound(caplog):
    run = hand_fed_run("mic:usb", tiny_spec())
    p = np.full(10, 0.1)
    minute = int(FLAT_SECONDS / run.pipeline.hop_seconds) + 1

    def windows(rms: float, n: int) -> None:
        for i in range(n):
            run.classified(Window(float(i), i + 3.0, np.zeros((96, 128), np.float32), rms), p, 1.0, 0.0)

    with caplog.at_level(logging.WARNING, logger="genrecast.run"):
        windows(5e-12, 2 * minute)  # two minutes (a constant resampled from 44.1 kHz is not quite 0): said once
        windows(0.05, 1)  # a sound: the next minute of it is said again
        windows(0.0, minute)
    said = [r.getMessage() for r in caplog.records if "digital silence" in r.getMessage()]
    assert said == ["stream mic-usb: mic:usb has sent digital silence (samples that never change) for 60 s: is it "
                    "muted, or the wrong input?"] * 2


def test_a_file_with_a_minute_of_silence_is_not_taken_for_a_muted_input(caplog):
    """Files are paced, so live, at the default speed: their silence is their own."""
    run = hand_fed_run("file:quiet.wav", tiny_spec())
    assert run.live
    with caplog.at_level(logging.WARNING, logger="genrecast.run"):
        for i in range(int(2 * FLAT_SECONDS) + 2):
            run.classified(Window(float(i), i + 3.0, np.zeros((96, 128), np.float32), 0.0), np.full(10, 0.1), 1.0,
                           0.0)
    assert not [r for r in caplog.records if "digital silence" in r.getMessage()]


def test_a_drop_keeps_the_count_of_digital_silence():
    """A review: a stream behind for good drops before most takes, and each drop started the count afresh, so a
    muted microphone on a busy machine was never named."""
    run = hand_fed_run("mic:usb", tiny_spec())
    half = int(FLAT_SECONDS / run.pipeline.hop_seconds) // 2 + 1
    flat = [Window(float(i), i + 3.0, np.zeros((96, 128), np.float32), 0.0) for i in range(half)]
    for w in flat:
        run.classified(w, np.full(10, 0.1), 1.0, 0.0)
    run._new_windows(provisional=False)  # what take() does after a drop
    for w in flat:
        run.classified(w, np.full(10, 0.1), 1.0, 0.0)
    assert run.flat_windows == 2 * half
