"""The streaming decision (smoothing, hysteresis, dwell, no_music, silence) and the track-level rule."""

from __future__ import annotations

import numpy as np
import pytest
from genrecast.daemon.decision import PAUSE_WINDOWS, Decider, DecisionConfig, State, track_state
from genrecast.dsp import GTZAN_GENRES

LOUD = 0.1  # an RMS above the silence level


def onehot(i: int, p: float = 0.9) -> np.ndarray:
    q = np.full(10, (1 - p) / 9)
    q[i] = p
    return q


def feed(d: Decider, windows: list[tuple[np.ndarray, float]], rms: float = LOUD) -> list[State]:
    return [d.update(p, music, rms) for p, music in windows]


def test_ema_smoothing_needs_several_windows_to_switch():
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=5, dwell_windows=1, first_confidence=None))
    states = feed(d, [(onehot(9), 1.0)] * 5 + [(onehot(0), 1.0)] * 5)
    genres = [s.genre for s in states]
    assert genres[0] is None  # one window is not enough to leave "no information" (0.37 < 0.4)
    assert genres[1:6] == ["rock"] * 5  # one window of blues does not flip it
    assert genres[6:] == ["blues"] * 4  # span 5 (alpha 1/3): the second one does


def test_majority_vote_and_uncertain_and_silence():
    cfg = DecisionConfig("majority", windows=3, min_confidence=0.5, leave_confidence=0.5, dwell_windows=1,
                         first_confidence=None, silence_windows=1)
    d = Decider(GTZAN_GENRES, cfg)
    feed(d, [(onehot(3), 1.0)] * 3)
    assert d.update(onehot(3), 1.0, LOUD) == State("genre", "disco", pytest.approx(0.9))
    assert d.update(onehot(5), 1.0, LOUD).genre == "disco"  # 2:1 for disco
    third = d.update(onehot(5), 1.0, LOUD)
    assert third.genre == "jazz" and third.confidence == pytest.approx((0.9 + 0.9 + 0.1 / 9) / 3)
    flat = Decider(GTZAN_GENRES, cfg)
    assert all(s.kind == "uncertain" for s in feed(flat, [(np.full(10, 0.1), 1.0)] * 4))
    assert d.update(onehot(5), 1.0, 0.001) == State("silence", None, 1.0)
    assert d.update(onehot(1), 1.0, LOUD).kind == "uncertain"  # history restarted: one window is not enough
    assert feed(d, [(onehot(1), 1.0)] * 2)[-1].genre == "classical"


def test_first_window_after_silence_is_not_certain():
    """Issue 10 item 16: smoothing restarts from no information, so one confident window is not 100 %."""
    for smoothing in ("ema", "majority"):
        d = Decider(GTZAN_GENRES, DecisionConfig(smoothing, dwell_windows=1))
        d.update(onehot(2), 1.0, 0.0)
        first = d.update(onehot(2, p=1.0), 1.0, LOUD)
        assert first.confidence <= 0.4 + 1e-9, (smoothing, first)
        assert d.update(onehot(2, p=1.0), 1.0, LOUD).confidence > first.confidence


def test_hysteresis_enters_at_min_and_leaves_below_leave_confidence():
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, min_confidence=0.5, leave_confidence=0.3,
                                             dwell_windows=1))  # span 1: no smoothing, to see the thresholds
    assert d.update(onehot(4, 0.45), 1.0, LOUD).kind == "uncertain"  # not yet in: below the enter level
    assert d.update(onehot(4, 0.55), 1.0, LOUD).genre == "hiphop"
    assert d.update(onehot(4, 0.35), 1.0, LOUD) == State("genre", "hiphop", pytest.approx(0.35))  # held
    assert d.update(onehot(4, 0.25), 1.0, LOUD).kind == "uncertain"  # left
    assert d.update(onehot(4, 0.35), 1.0, LOUD).kind == "uncertain"  # and must reach 0.5 again to come back
    assert d.update(onehot(6, 0.6), 1.0, LOUD).genre == "metal"


def test_a_new_state_must_hold_for_the_dwell():
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=3, first_confidence=None))
    states = feed(d, [(onehot(9), 1.0)] * 4 + [(onehot(0), 1.0)] + [(onehot(9), 1.0)] + [(onehot(0), 1.0)] * 4)
    kinds = [s.genre or s.kind for s in states]
    # uncertain until rock has been the candidate 3 windows; a lone blues window never shows; blues after 3
    assert kinds == ["uncertain", "uncertain", "rock", "rock", "rock", "rock", "rock", "rock", "blues", "blues"]
    assert states[4].confidence == pytest.approx(0.1 / 9)  # held rock reports rock's own (low) probability


def test_no_music_below_the_models_threshold():
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=2, first_confidence=None),
                music_threshold=0.5)
    states = feed(d, [(onehot(9), 0.9)] * 3 + [(onehot(9), 0.2)] * 3 + [(onehot(9), 0.9)] * 3)
    assert [s.genre or s.kind for s in states] == ["uncertain", "rock", "rock", "rock", "no_music", "no_music",
                                                   "no_music", "rock", "rock"]
    assert states[5] == State("no_music", None, pytest.approx(0.8))
    # without a threshold (a model without a music head) the music value is ignored
    plain = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=1))
    assert plain.update(onehot(9), 0.0, LOUD).genre == "rock"


def test_majority_smooths_music_too():
    d = Decider(GTZAN_GENRES, DecisionConfig("majority", windows=3, dwell_windows=1, first_confidence=None),
                music_threshold=0.5)
    # music over the last 3 windows, unheard ones at the threshold: 0.67, 0.5, 0.33, 0
    states = feed(d, [(onehot(1), 1.0)] + [(onehot(1), 0.0)] * 3)
    assert [s.kind for s in states] == ["uncertain", "genre", "no_music", "no_music"]


def test_music_with_no_clear_genre_is_judged_music_after_the_dwell():
    """Home Assistant's Music sensor was unknown for as long as music had no clear genre (uncertain); now such
    music is judged music once it has held the dwell, while a sound not judged yet stays unknown."""
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=3, first_confidence=None),
                music_threshold=0.5)
    flat = np.full(10, 0.1)
    states = feed(d, [(flat, 0.9)] * 4)
    assert [s.kind for s in states] == ["uncertain"] * 4
    assert [s.music for s in states] == [None, None, True, True]
    # speech after it: no_music needs the dwell too, and until then the sound is still the music it was judged
    later = feed(d, [(flat, 0.1)] * 3)
    assert [(s.kind, s.music) for s in later] == [("uncertain", True), ("uncertain", True), ("no_music", False)]
    # a genre that fades out of reach (hysteresis) leaves music with no clear genre, music all along
    held = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=2, first_confidence=None),
                   music_threshold=0.5)
    fading = feed(held, [(onehot(4), 0.9)] * 3 + [(flat, 0.9)] * 3)
    assert [s.genre or s.kind for s in fading] == ["uncertain", "hiphop", "hiphop", "hiphop", "uncertain",
                                                    "uncertain"]
    assert [s.music for s in fading] == [None, True, True, True, True, True]
    # judged music is a state: one sure window of speech or of a genre after it waits for the dwell like any change
    # (the confident first answer is for a start only: Music went on -> off -> on at one word of a DJ)
    sure = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=3, first_confidence=0.6),
                   music_threshold=0.5)
    assert feed(sure, [(flat, 0.9)] * 3)[-1].music is True
    assert [(s.kind, s.music) for s in feed(sure, [(flat, 0.05), (onehot(2), 0.9)])] == [("uncertain", True)] * 2
    # a model without a music head cannot tell music with no clear genre from speech: never judged
    plain = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=2, first_confidence=None))
    assert [s.music for s in feed(plain, [(flat, 1.0)] * 4)] == [None] * 4
    # the kinds say the rest: a genre is music, no_music and silence are not
    assert State("genre", "rock", 0.5).music is True
    assert State("silence", None, 1.0).music is False and State("no_music", None, 0.8).music is False


def test_a_confident_first_window_is_taken_without_the_dwell():
    """Issue 19: a stream that starts (or sounds again after a silence) says something within its first window when
    that window is sure of itself; one window is still never certain, and later changes keep the dwell."""
    cfg = DecisionConfig("ema", windows=5, dwell_windows=5, first_confidence=0.7, silence_windows=1)
    d = Decider(GTZAN_GENRES, cfg)
    first = d.update(onehot(9, 0.8), 1.0, LOUD)
    assert first == State("genre", "rock", pytest.approx(0.8 / 3 + 2 / 30))  # smoothed from no information
    # a different genre now needs the smoothing and the full dwell: blues is the candidate from its second window
    # (0.59 >= 0.4; the first left rock below 0.3 with blues at 0.39, so uncertain was) and taken five windows on
    assert [s.genre for s in feed(d, [(onehot(0), 1.0)] * 6)] == ["rock"] * 5 + ["blues"]
    # after a silence, the first window is again taken at once when sure enough, and not when it is not
    assert d.update(onehot(0), 1.0, 0.0).kind == "silence"
    assert d.update(onehot(3, 0.75), 1.0, LOUD).genre == "disco"
    assert d.update(onehot(3), 1.0, 0.0).kind == "silence"
    assert d.update(onehot(3, 0.6), 1.0, LOUD).kind == "silence"  # below first_confidence: silence stands, the dwell
    # while nothing has been decided, the first confident window still goes through
    assert d.update(onehot(6, 0.9), 1.0, LOUD).genre == "metal"


def test_a_confident_first_window_can_say_no_music():
    d = Decider(GTZAN_GENRES, DecisionConfig(first_confidence=0.7), music_threshold=0.5)
    assert d.update(onehot(9), 0.1, LOUD).kind == "no_music"  # 1 - 0.1 >= 0.7 and the smoothed music < 0.5
    unsure = Decider(GTZAN_GENRES, DecisionConfig(first_confidence=0.7), music_threshold=0.5)
    assert unsure.update(onehot(9), 0.4, LOUD).kind == "uncertain"  # no_music, but only 0.6 sure


def test_after_a_pause_the_windows_that_still_hold_it_do_not_make_the_first_answer():
    """A track after a few seconds of silence: the windows that overlap the last silent one are partly the pause.
    The music head calls a mostly quiet window not music (0.05), and the genres read quiet as classical (0.87 with
    music 1.0 on a window 1.6 s of which was the pause): either was taken at once, and then held for the dwell
    (Home Assistant: silence -> no_music -> blues, or silence -> classical -> disco, at most track changes)."""
    d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)  # musicnn at a 1-s hop
    feed(d, [(onehot(6), 1.0)] * 6)
    assert [s.genre or s.kind for s in feed(d, [(onehot(1), 1.0)] * 5, rms=0.0)] == ["metal"] * 4 + ["silence"]
    after = feed(d, [(onehot(1), 0.05), (onehot(1), 1.0), (onehot(1), 1.0)] + [(onehot(3), 1.0)] * 2)
    # the three that share the silent window's audio wait for the dwell (silence stands meanwhile); the next, sure of
    # its genre, is taken
    assert [s.genre or s.kind for s in after] == ["silence", "silence", "silence", "disco", "disco"]
    # speech after a pause is no_music once its windows are the speech alone (or after the dwell)
    d2 = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
    d2.update(onehot(0), 1.0, 0.0)
    assert [s.kind for s in feed(d2, [(onehot(0, 0.3), 0.02)] * 4)] == ["silence"] * 3 + ["no_music"]
    # a stream's start has no pause in its windows: its first sure window is still taken at once
    start = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
    assert start.update(onehot(3), 1.0, LOUD).genre == "disco"


def test_bad_decision_configs_are_refused():
    with pytest.raises(ValueError, match="leave_confidence"):
        DecisionConfig(min_confidence=0.3, leave_confidence=0.4)
    with pytest.raises(ValueError, match="smoothing"):
        DecisionConfig(smoothing="median")
    with pytest.raises(ValueError, match="first_confidence"):
        DecisionConfig(min_confidence=0.5, first_confidence=0.45)


def test_track_state_silence_no_music_and_genre():
    probs = np.stack([onehot(5), onehot(5), onehot(7)])
    loud, quiet = np.full(3, LOUD), np.full(3, 0.0001)
    genre = track_state(probs, np.full(3, 0.9), loud, GTZAN_GENRES, 0.5)
    assert (genre.kind, genre.genre) == ("genre", "jazz") and genre.confidence == pytest.approx((0.9 * 2 + 0.1 / 9) / 3)
    assert genre.music == pytest.approx(0.9)
    no_music = track_state(probs, np.array([0.1, 0.2, 0.9]), loud, GTZAN_GENRES, 0.5)
    assert (no_music.kind, no_music.genre, no_music.confidence) == ("no_music", None, pytest.approx(0.6))
    assert track_state(probs, np.full(3, 0.1), loud, GTZAN_GENRES, None).kind == "genre"  # no head, no no_music
    silence = track_state(probs, np.ones(3), quiet, GTZAN_GENRES, None)
    assert (silence.kind, silence.genre, silence.confidence) == ("silence", None, 1.0)
    partly = track_state(probs, np.ones(3), np.array([0.0, LOUD, 0.0]), GTZAN_GENRES, None)
    assert partly.kind == "genre"  # one audible window is enough for an answer


def test_after_a_gap_the_smoothing_starts_afresh_but_the_state_stands():
    """A gap the stream stayed online through (audio dropped for falling behind): a new decider (no state)
    announced `uncertain` for a first window under first_confidence, and then the old genre again as new; the state
    now stands until the new audio changes it."""
    labels = ("blues", "jazz", "pop")
    d = Decider(labels, DecisionConfig(windows=4, min_confidence=0.6, leave_confidence=0.4, dwell_windows=2,
                                       first_confidence=0.6))
    pop = np.array([0.1, 0.1, 0.8])
    for _ in range(6):
        held = d.update(pop, 1.0, 0.1)
    assert held.genre == "pop"
    d.restart()
    unsure = np.array([0.2, 0.25, 0.55])  # under first_confidence
    assert d.update(unsure, 1.0, 0.1).genre == "pop"  # not uncertain
    jazz = np.array([0.05, 0.9, 0.05])
    # two sure windows that agree answer at once, as after a pause: one was enough, but a drop comes in the middle of
    # the music, where the state held is most likely right
    assert [d.update(jazz, 1.0, 0.1).genre for _ in range(2)] == ["pop", "jazz"]
    d.restart()
    assert d.update(pop, 0.02, 0.1).genre == "jazz"  # and never no_music over music at once


def test_after_a_stall_the_state_is_forgotten():
    """A stall: no audio, so silence, and the next audio is judged as after one (pop stood through it and came back
    as current with the audio)."""
    labels = ("blues", "jazz", "pop")
    d = Decider(labels, DecisionConfig(windows=4, min_confidence=0.6, leave_confidence=0.4, dwell_windows=2,
                                       first_confidence=0.6))
    pop = np.array([0.1, 0.1, 0.8])
    assert [d.update(pop, 1.0, 0.1) for _ in range(6)][-1].genre == "pop"
    assert d.forget() == State("silence", None, 1.0)
    unsure = np.array([0.2, 0.25, 0.55])  # under first_confidence
    assert d.update(unsure, 1.0, 0.1) == State("silence", None, 1.0)  # silence until the audio is judged
    assert d.update(np.array([0.05, 0.9, 0.05]), 1.0, 0.1).genre == "jazz"  # a sure window answers at once


def test_candidates_that_keep_changing_leave_the_held_state_for_music_with_no_clear_genre():
    """A kitchen microphone review: room-recorded jazz read classical, electronic, uncertain in turn, none of them
    for the dwell, and the stream stood at no_music, 0.01 sure, for 16 s of music. After two dwells of candidates
    none of which is the held state, the stream is what most of their windows were: music with no clear genre."""
    cfg = DecisionConfig("majority", windows=1, dwell_windows=3, first_confidence=None)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    assert feed(d, [(onehot(0), 0.1)] * 3)[-1].kind == "no_music"
    turns = [(onehot(1), 0.99), (onehot(0), 0.99)] * 4  # classical, blues, classical, ...: music, genre unclear
    states = feed(d, turns)
    assert [s.kind for s in states[:5]] == ["no_music"] * 5  # one dwell and more: the held state stands a while
    assert states[5] == State("uncertain", None, pytest.approx(0.9), judged=True) and states[5].music
    assert [s.kind for s in states[6:]] == ["uncertain"] * 2  # and holds while they keep changing
    # a genre that holds for the dwell is still taken as before
    assert feed(d, [(onehot(5), 0.99)] * 3)[-1].genre == "jazz"


def test_changing_candidates_are_judged_by_most_of_their_windows_not_the_last():
    """A review: one no_music window among sixteen of music decided the state, which then stuck while music
    played."""
    cfg = DecisionConfig("majority", windows=1, dwell_windows=3, first_confidence=None)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    assert feed(d, [(onehot(9), 0.99)] * 3)[-1].genre == "rock"
    turns = [(onehot(1), 0.99), (onehot(0), 0.99), (onehot(1), 0.99), (onehot(0), 0.99), (onehot(1), 0.99),
             (onehot(0), 0.1)]  # the sixth, where two dwells are up, alone says no_music
    assert feed(d, turns)[-1] == State("uncertain", None, pytest.approx(0.9), judged=True)


def test_a_candidate_on_its_way_through_the_dwell_is_not_cut_short():
    """A review: a genre one window short of its own dwell was turned into uncertain, a change more and a dwell
    later."""
    cfg = DecisionConfig("majority", windows=1, dwell_windows=5, first_confidence=None)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    assert feed(d, [(onehot(9), 0.99)] * 5)[-1].genre == "rock"
    states = feed(d, [(onehot(0), 0.99), (onehot(1), 0.99)] * 3 + [(onehot(5), 0.99)] * 5)
    assert [s.kind for s in states[:10]] == ["genre"] * 10 and {s.genre for s in states[:10]} == {"rock"}
    assert states[10].genre == "jazz"  # its fifth window: taken, with no uncertain before it


def test_the_held_state_heard_again_starts_the_count_afresh():
    cfg = DecisionConfig("majority", windows=1, dwell_windows=3, first_confidence=None)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    feed(d, [(onehot(9), 0.99)] * 3)
    states = feed(d, [(onehot(0), 0.99), (onehot(1), 0.99), (onehot(9), 0.99)] * 4)
    assert {s.genre for s in states} == {"rock"}  # rock keeps coming back: it is still what plays


def test_without_a_music_head_changing_candidates_keep_the_first_confident_answer():
    """A review: taking an unjudged uncertain counted as the stream's first state, so a sure window after it had
    to wait out the dwell."""
    cfg = DecisionConfig("majority", windows=1, dwell_windows=3, first_confidence=0.9)
    d = Decider(GTZAN_GENRES, cfg)  # no music head: uncertain is never judged
    states = feed(d, [(onehot(0, 0.5), 1.0), (onehot(1, 0.5), 1.0)] * 4)
    assert {s.kind for s in states} == {"uncertain"} and not any(s.judged for s in states)
    assert d.update(onehot(5, 0.95), 1.0, LOUD).genre == "jazz"  # at once, as a first answer


def test_no_music_taken_from_changing_candidates_is_not_near_zero_sure():
    """A review: the rule fires on a window whose candidate is usually music, and no_music came out 0.01 sure."""
    cfg = DecisionConfig("majority", windows=1, dwell_windows=3, first_confidence=None)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    feed(d, [(onehot(9), 0.99)] * 3)
    quiet = (onehot(9), 0.1)
    state = feed(d, [quiet, quiet, (onehot(0), 0.99), quiet, quiet, (onehot(1), 0.99)])[-1]
    assert state.kind == "no_music" and state.confidence >= 0.5


def test_a_provisional_answer_is_confirmed_only_by_a_full_window_that_agrees(caplog):
    """1.1 s of speech, then rock: the provisional `no_music` was "confirmed" by the first full window, whose own
    answer was music, because the decider holds a state through the dwell (a review); the genre message dropped
    `provisional` for an answer no full window had given."""
    import logging

    from daemon_helpers import hand_fed_run
    from genrecast.daemon.pipeline import Window
    from tiny_model import tiny_spec

    spec = tiny_spec(music_threshold=0.5)
    run = hand_fed_run("mic:usb", spec)
    frames = np.zeros((spec.dsp.n_mels, spec.n_frames), np.float32)
    speech, rock = (onehot(9, 0.3), 0.05, 0.0), (onehot(9, 0.95), 0.99, 0.0)  # probabilities, music, handed at
    with caplog.at_level(logging.INFO, logger="genrecast.run"):
        run.classified(Window(0.0, 1.0, frames, 0.1, provisional=True), *speech)
        assert (run.tracker.state.kind, run.tracker.provisional) == ("no_music", True)
        run.classified(Window(0.0, 3.0, frames, 0.1), *rock)  # the first full window: music
        assert run.decider.contested and (run.tracker.state.kind, run.tracker.provisional) == ("no_music", True)
        for i in range(1, 8):  # rock's dwell: then rock, from a full window
            run.classified(Window(float(i), i + 3.0, frames, 0.1), *rock)
    assert (run.tracker.state.genre, run.tracker.provisional) == ("rock", False)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stream mic-usb: ")]
    assert not [line for line in said if "confirmed" in line], said


def test_full_windows_after_a_silence_are_never_provisional():
    """A review of the change above: after a silence the decider holds nothing, so its first windows of unsure music
    were contested, and went out marked provisional though no provisional window had been heard."""
    from daemon_helpers import hand_fed_run
    from genrecast.daemon.pipeline import Window
    from tiny_model import tiny_spec

    spec = tiny_spec(music_threshold=0.5)
    run = hand_fed_run("file:x.wav", spec)
    frames = np.zeros((spec.dsp.n_mels, spec.n_frames), np.float32)
    unsure = np.full(len(GTZAN_GENRES), 1 / len(GTZAN_GENRES))
    run.classified(Window(0.0, 3.0, frames, 0.0), unsure, 0.9, 0.0)  # silence
    for i in range(1, 4):
        run.classified(Window(float(i), i + 3.0, frames, 0.1), unsure, 0.9, 0.0)
        assert not run.tracker.provisional


def test_music_is_held_down_to_the_margin_below_the_threshold():
    """Quiet reggae's music probability hovered at the threshold, and the Music sensor went off and on five times in
    39 s: music once heard is left only ``music_margin`` below the threshold, and entered at the threshold itself."""
    cfg = DecisionConfig("ema", windows=1, dwell_windows=1, first_confidence=None, music_margin=0.1)
    d = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    assert [s.genre or s.kind for s in feed(d, [(onehot(8), 0.55), (onehot(8), 0.45), (onehot(8), 0.41),
                                                (onehot(8), 0.39), (onehot(8), 0.45), (onehot(8), 0.5)])] == [
        "reggae", "reggae", "reggae", "no_music", "no_music", "reggae"]
    # without the margin the same windows flap
    flap = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=1, first_confidence=None,
                                                music_margin=0.0), music_threshold=0.5)
    assert [s.genre or s.kind for s in feed(flap, [(onehot(8), 0.55), (onehot(8), 0.45), (onehot(8), 0.5)])] == [
        "reggae", "no_music", "reggae"]
    # a judged uncertain is music too, and a first answer is judged against the threshold itself
    flat = Decider(GTZAN_GENRES, cfg, music_threshold=0.5)
    assert [(s.kind, s.music) for s in feed(flat, [(np.full(10, 0.1), 0.45), (np.full(10, 0.1), 0.6),
                                                   (np.full(10, 0.1), 0.45)])] == [
        ("no_music", False), ("uncertain", True), ("uncertain", True)]
    with pytest.raises(ValueError, match="music_margin"):
        DecisionConfig(music_margin=0.3)
    # never more than half the model's threshold, so music can always end (a model with a threshold of 0.3 and a
    # margin of 0.25 held music down to 0.05); and a first window after a drop keeps the margin
    low = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=1, music_margin=0.25),
                  music_threshold=0.3)
    assert [s.kind for s in feed(low, [(onehot(8), 0.9), (onehot(8), 0.16), (onehot(8), 0.14)])] == [
        "genre", "genre", "no_music"]
    dropped = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=1, dwell_windows=1, music_margin=0.15),
                      music_threshold=0.5)
    feed(dropped, [(onehot(8), 0.9)] * 2)
    dropped.restart()
    assert dropped.update(onehot(8), 0.38, LOUD).genre == "reggae"  # not no_music, 0.62 sure, at once


def test_a_dip_under_the_gate_inside_the_sound_holds_it():
    """The kitchen microphone: one window under the silence gate inside quiet music made silence, then uncertain,
    then the same genre again with a new ``since``. Fewer than ``silence_windows`` quiet windows in a row are a dip:
    the state stands (the same one, so nothing is published as a change) and the smoothing goes on as before it."""
    d = Decider(GTZAN_GENRES, DecisionConfig("ema", windows=5, dwell_windows=3, silence_windows=3),
                music_threshold=0.5)
    rock = feed(d, [(onehot(9), 1.0)] * 4)[-1]
    assert rock.genre == "rock"
    assert feed(d, [(onehot(1), 0.0)] * (PAUSE_WINDOWS - 1), rms=0.001) == [rock] * (PAUSE_WINDOWS - 1)
    after = d.update(onehot(9), 1.0, LOUD)  # what the quiet window said was left out
    assert after.genre == "rock" and after.confidence > rock.confidence  # the smoothing went on from rock
    # the third quiet window in a row is silence, and the sound after it is judged afresh
    assert [s.kind for s in feed(d, [(onehot(9), 1.0)] * 3, rms=0.001)] == ["genre", "genre", "silence"]
    assert d.update(onehot(9, 0.5), 1.0, LOUD).kind == "silence"  # until the sound is judged
    # a loud window between quiet ones starts the count again
    d2 = Decider(GTZAN_GENRES, DecisionConfig(silence_windows=2))
    d2.update(onehot(9), 1.0, LOUD)
    held = d2.update(onehot(9), 1.0, LOUD)
    states = [d2.update(onehot(9), 1.0, r) for r in (0.001, LOUD, 0.001, 0.001)]
    assert [s.kind for s in states] == [held.kind] * 3 + ["silence"]
    # nothing held yet, or silence held: a quiet window is silence at once
    assert Decider(GTZAN_GENRES, DecisionConfig()).update(onehot(9), 1.0, 0.001).kind == "silence"
    with pytest.raises(ValueError, match="silence_windows"):
        DecisionConfig(silence_windows=0)


def test_a_dip_holds_only_a_judged_state_and_is_no_confirmation():
    """A review of the dip: a click in a silent room (one window of sound, not judged yet) was held as ``uncertain``
    for five windows, and skipped the settle rule (the window after it, mostly quiet, made no_music at once); and a
    quiet window, whose answer is left out, confirmed a provisional state."""
    click = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
    assert click.update(onehot(9, 0.3), 0.6, LOUD).kind == "uncertain"  # not judged: nothing to hold
    assert click.update(onehot(9), 1.0, 0.001).kind == "silence"
    assert click.update(onehot(9, 0.3), 0.05, LOUD).kind == "silence"  # partly the pause: no first answer
    sure = Decider(GTZAN_GENRES, DecisionConfig())
    assert sure.update(onehot(9), 1.0, LOUD).genre == "rock" and not sure.contested
    assert sure.update(onehot(1), 1.0, 0.001).genre == "rock" and sure.contested  # held, not agreed with
    assert sure.update(onehot(9), 1.0, LOUD).genre == "rock" and not sure.contested


def test_after_a_pause_shorter_than_silence_the_sound_is_judged_afresh():
    """Tracks with 6-s pauses (three quiet windows, under ``silence_windows``): each track's genre came about 3 s
    late, the last one's held over the pause and into it. Two quiet windows in a row or more are a pause: the sound
    after it is judged as after a silence, while the old state stands until then (nothing else is announced); two
    sure windows that agree replace it at once (one sure window named the next jazz track classical, in a user's
    run), and never with no_music over music (a quiet intro); a single quiet window inside the music is no pause."""
    def after(quiet: int, then: list) -> list[str]:
        d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
        feed(d, [(onehot(9), 1.0)] * 6)
        states = feed(d, [(onehot(1), 1.0)] * quiet, rms=0.001)
        states += feed(d, [(onehot(0, 0.5), 0.5)] * 3 + then)  # 3 windows partly the pause, then the new sound
        return [s.genre or s.kind for s in states]

    jazz = [(onehot(5), 1.0)] * 3
    assert after(PAUSE_WINDOWS, jazz) == ["rock"] * 6 + ["jazz"] * 2  # at its second sure window
    assert after(PAUSE_WINDOWS - 1, jazz) == ["rock"] * 7  # a dip: the smoothing goes on, jazz needs its dwell
    # a silence: it stands while the windows hold some of it, and the first sure window answers
    assert after(5, jazz) == ["rock"] * 4 + ["silence"] * 4 + ["jazz"] * 3
    # one sure window of classical, then rock again: rock stands (and two sure rock windows confirm it)
    assert after(PAUSE_WINDOWS, [(onehot(1), 1.0), (onehot(9), 1.0), (onehot(9), 1.0)])[-3:] == ["rock"] * 3
    # a quiet intro, sure it is not music: the music stands through the dwell
    assert after(PAUSE_WINDOWS, [(onehot(5), 0.02)] * 3)[-3:] == ["rock"] * 3
    # two sure windows in a row: an unsure one between them starts over
    d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
    feed(d, [(onehot(9), 1.0)] * 6)
    feed(d, [(onehot(1), 1.0)] * PAUSE_WINDOWS, rms=0.001)
    feed(d, [(onehot(9, 0.5), 1.0)] * 3)  # rock again, partly the pause
    assert [s.genre for s in feed(d, [(onehot(5), 1.0), (onehot(5, 0.5), 1.0), (onehot(5), 1.0)])] == ["rock"] * 3
    # the windows that still hold the pause never answer, sure or not
    d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
    feed(d, [(onehot(9), 1.0)] * 6)
    feed(d, [(onehot(1), 1.0)] * PAUSE_WINDOWS, rms=0.001)
    assert [s.genre for s in feed(d, [(onehot(1), 0.9)] * 3)] == ["rock"] * 3


def test_the_state_held_through_a_pause_or_a_drop_is_confirmed_by_the_sound_that_agrees():
    """A review: after a pause whose new sound kept agreeing with the held state without two sure windows in a row
    (the usual case through a room), the guard stayed on for good, and minutes later two sure windows of another
    genre replaced it at once (jazz, then classical for six windows, then jazz). A dwell of agreeing windows now
    confirms the held state: a change needs the dwell again."""
    def after(pause: int, drop: bool) -> list[str]:
        d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=0.5, settle_windows=3)
        feed(d, [(onehot(5), 1.0)] * 6)
        feed(d, [(onehot(1), 1.0)] * pause, rms=0.001)
        if drop:
            d.restart()
        feed(d, [(onehot(5, 0.55), 1.0)] * 60)  # jazz again, never sure by one window
        feed(d, [(onehot(1), 1.0)], rms=0.001)  # a dip
        return [s.genre for s in feed(d, [(onehot(1, 0.8), 1.0)] * 2 + [(onehot(5, 0.55), 1.0)] * 6)]

    assert after(PAUSE_WINDOWS, False) == ["jazz"] * 8
    assert after(0, True) == ["jazz"] * 8
    assert after(0, False) == ["jazz"] * 8


def test_a_model_without_a_music_head_holds_its_uncertain_through_a_dip():
    """Its ``uncertain`` is never judged (it cannot tell music from speech), so a dip did not hold it: one quiet
    window made five of silence, which then stood until the dwell. A state it has taken is held like any other."""
    d = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=None, settle_windows=3)
    feed(d, [(onehot(9), 1.0)] * 6)
    assert feed(d, [(np.full(10, 0.1), 1.0)] * 12)[-1].kind == "uncertain"
    states = feed(d, [(np.full(10, 0.1), 1.0)], rms=0.001) + feed(d, [(np.full(10, 0.1), 1.0)] * 7)
    assert [s.kind for s in states] == ["uncertain"] * 8
    start = Decider(GTZAN_GENRES, DecisionConfig(), music_threshold=None, settle_windows=3)
    start.update(np.full(10, 0.1), 1.0, LOUD)  # a click: nothing taken yet
    assert start.update(np.full(10, 0.1), 1.0, 0.001).kind == "silence"
