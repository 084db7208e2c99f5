import json

import pytest
from genrecast.dsp import DEFAULT_DSP, DSPConfig, ModelSpec, ModelSpecError


def test_defaults_are_the_documented_front_end():
    c = DEFAULT_DSP
    assert (c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.window) == (22050, 2048, 512, 128, "hann")
    assert c.fmax_hz == 11025.0 and c.n_bins == 1025
    assert c.frames_for_seconds(3.0) == 126


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("n_fft", 1000, "power of two"), ("hop_length", 0, "hop_length"), ("fmax", 20000.0, "fmax"),
     ("window", "hamming", "window"), ("log_floor", 0.0, "log_floor"), ("n_mels", 0, "n_mels")],
)
def test_bad_values_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        DSPConfig(**{field: value})


def test_round_trip_and_fingerprint():
    cfg = DSPConfig(n_mels=64)
    assert DSPConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.fingerprint() == DSPConfig(n_mels=64).fingerprint() != DEFAULT_DSP.fingerprint()
    with pytest.raises(ValueError, match="unknown DSP config keys: bogus"):
        DSPConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_model_spec_round_trip():
    spec = ModelSpec(name="m", version="1", input_norm={"mean": 0.0, "std": 1.0}, training={"tracks": 3})
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and back.n_frames == 126 and back.model_id == "m-1"
    assert back.music_threshold is None and not back.has_music_head


def test_model_spec_music_threshold_round_trips_and_old_specs_lack_it():
    spec = ModelSpec(name="m", version="2", music_threshold=0.35)
    assert ModelSpec.from_json(spec.to_json()) == spec and spec.has_music_head
    old = json.loads(ModelSpec(name="m", version="1").to_json())
    del old["music_threshold"]  # as 0.1.1's metadata, written before the field existed
    assert ModelSpec.from_json(json.dumps(old)).music_threshold is None


def test_model_spec_tags_round_trip_and_old_specs_lack_them():
    spec = ModelSpec(name="m", version="3", tags=("rock", "jazz", "80s"), tag_origin="MSD", tag_threshold=0.3)
    assert ModelSpec.from_json(spec.to_json()) == spec and spec.has_tags
    old = json.loads(ModelSpec(name="m", version="1").to_json())
    for key in ("tags", "tag_origin", "tag_threshold"):  # as 0.2.1's metadata, written before the fields existed
        del old[key]
    back = ModelSpec.from_json(json.dumps(old))
    assert back.tags == () and not back.has_tags and back.announced_tags([]) == {}


def test_model_spec_direct_head_round_trips_and_old_specs_lack_it():
    spec = ModelSpec(name="m", version="5", direct_head=True)
    assert ModelSpec.from_json(spec.to_json()) == spec
    old = json.loads(ModelSpec(name="m", version="1").to_json())
    del old["direct_head"]  # as 0.4.0's metadata, written before the field existed
    assert ModelSpec.from_json(json.dumps(old)).direct_head is False


def test_model_spec_room_detector_round_trips_old_specs_lack_it_and_it_needs_a_direct_head():
    spec = ModelSpec(name="m", version="6", direct_head=True, room_detector=True)
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.outputs == ("probabilities", "direct_probabilities", "room")
    old = json.loads(ModelSpec(name="m", version="5", direct_head=True).to_json())
    del old["room_detector"]  # as 0.5.0's metadata, written before the field existed
    assert ModelSpec.from_json(json.dumps(old)).room_detector is False
    with pytest.raises(ModelSpecError, match="direct_head must be true with room_detector"):
        ModelSpec(name="m", version="6", room_detector=True)


def test_announced_tags_are_the_likeliest_few_at_the_threshold_or_more():
    names = tuple(f"t{i}" for i in range(8))
    spec = ModelSpec(name="m", version="1", tags=names, tag_origin="test", tag_threshold=0.3)
    assert spec.announced_tags([0.1, 0.3, 0.9, 0.29999, 0.5, 0.0, 0.0, 0.0]) == {"t2": 0.9, "t4": 0.5, "t1": 0.3}
    assert list(spec.announced_tags([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.95, 0.31])) == ["t6", "t0", "t1", "t2", "t3"]
    assert spec.announced_tags([0.2] * 8) == {}


@pytest.mark.parametrize("changes", [{"tags": ("a", "a"), "tag_origin": "x", "tag_threshold": 0.3},
                                     {"tags": ("a", ""), "tag_origin": "x", "tag_threshold": 0.3},
                                     {"tags": ("a",), "tag_origin": "x"},
                                     {"tags": ("a",), "tag_threshold": 0.3},
                                     {"tags": ("a",), "tag_origin": "x", "tag_threshold": 1.0}])
def test_a_spec_with_bad_tags_is_refused(changes):
    with pytest.raises(ModelSpecError):
        ModelSpec(name="m", version="1", **changes)


def test_musicnn_front_end_spec_has_187_frames():
    cfg = DSPConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96)
    assert ModelSpec(name="m", version="1", dsp=cfg, window_seconds=3.008).n_frames == 187


def _spec_with(change) -> str:
    data = json.loads(ModelSpec(name="m", version="1").to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize("text", [
    "not json", "[1, 2]", '{"format": 99}', '{"format": 1, "name": "x"}',
    _spec_with(lambda d: d.update(dsp={})),  # every DSP parameter must be stated, none assumed
    _spec_with(lambda d: d["dsp"].pop("n_mels")),
    _spec_with(lambda d: d["dsp"].update(n_fft="2048")),
    _spec_with(lambda d: d.update(labels="abc")),
    _spec_with(lambda d: d.update(labels=[1, 2])),
    _spec_with(lambda d: d.pop("window_seconds")),
    _spec_with(lambda d: d.update(hop_seconds=True)),
    _spec_with(lambda d: d.update(music_threshold="0.5")),
    _spec_with(lambda d: d.update(music_threshold=True)),
    _spec_with(lambda d: d.update(music_threshold=1.0)),
    _spec_with(lambda d: d.update(music_threshold=0)),
    _spec_with(lambda d: d.update(music_head=True)),
    _spec_with(lambda d: d.update(tags="rock")),
    _spec_with(lambda d: d.update(tags=[1], tag_origin="x", tag_threshold=0.3)),
    _spec_with(lambda d: d.update(tags=["rock"], tag_origin="x", tag_threshold="0.3")),
    _spec_with(lambda d: d.update(tags=["rock"], tag_origin=3, tag_threshold=0.3)),
    _spec_with(lambda d: d.update(direct_head="yes")),
    _spec_with(lambda d: d.update(direct_head=1)),
    _spec_with(lambda d: d.update(direct_head=True, room_detector="yes")),
    _spec_with(lambda d: d.update(room_detector=True)),
])
def test_malformed_model_spec_is_refused(text):
    with pytest.raises(ModelSpecError):
        ModelSpec.from_json(text)
