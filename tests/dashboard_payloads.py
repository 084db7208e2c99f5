"""Payloads as the MQTT contract (docs/mqtt.md) describes them, for the dashboard's tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status(stream_id: str, state: str = "online", **extra) -> dict:
    return {"version": 1, "stream_id": stream_id, "state": state, "time": now(),
            "model_id": "gtzan-cnn-1", "source": f"file:{stream_id}.wav", **extra}


def prediction(stream_id: str, genre: str = "rock", confidence: float = 0.62, kind: str = "genre", t: float = 0.0,
               music: float | None = None, tags: dict[str, float] | None = None) -> dict:
    rest = (1.0 - confidence) / (len(GENRES) - 1)
    probs = {g: (confidence if g == genre else rest) for g in GENRES}
    return {
        "version": 1, "stream_id": stream_id, "model_id": "gtzan-cnn-1", "time": now(),
        "window_start_s": t, "window_end_s": t + 3.0, "probabilities": probs,
        "top": {"genre": genre, "confidence": confidence},
        "state": {"kind": kind, "genre": genre if kind == "genre" else None, "confidence": confidence,
                  "music": _decided_music(kind)},
        "rms": 0.1, "latency_ms": 4.2, **({} if music is None else {"music": music}),
        **({} if tags is None else {"tags": tags}),
    }


def genre(stream_id: str, genre: str | None = "rock", kind: str = "genre", confidence: float = 0.7) -> dict:
    return {"version": 1, "stream_id": stream_id, "model_id": "gtzan-cnn-1", "time": now(),
            "kind": kind, "genre": genre, "confidence": confidence,
            "music": _decided_music(kind), "since": now()}


def _decided_music(kind: str) -> bool | None:
    """A state's music, as the daemon decides it (an ``uncertain`` here is one not judged yet)."""
    return {"genre": True, "no_music": False, "silence": False}.get(kind)


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()
