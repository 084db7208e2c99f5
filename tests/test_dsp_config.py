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
])
def test_malformed_model_spec_is_refused(text):
    with pytest.raises(ModelSpecError):
        ModelSpec.from_json(text)
