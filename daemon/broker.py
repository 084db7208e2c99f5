"""Where and how to reach the MQTT broker; shared by the daemon and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **overrides) -> BrokerConfig:
        """``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...`` (default ports 1883 and 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL must look like mqtt://host:port or mqtts://host:port, got {url!r}")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"broker URL has a bad port: {url!r}") from None
        fields = {
            "host": parts.hostname,
            "port": port,
            "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    @property
    def url(self) -> str:
        """The URL without credentials, safe to log."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"
