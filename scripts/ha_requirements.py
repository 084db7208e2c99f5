"""Print the pip requirements of the Home Assistant integrations a test instance loads, one a line.

Run with Home Assistant's own Python (its venv): ``ha_requirements.py DOMAIN ...``. The domains given, those Home
Assistant always loads (its bootstrap's sets) and their dependencies, followed through their manifests. The test
starts Home Assistant with ``--skip-pip``, so what is missing here fails loudly there instead of being downloaded.
"""

import json
import sys
from pathlib import Path

from homeassistant import bootstrap, components

ROOT = Path(components.__file__).parent


def manifest(domain: str) -> dict:
    return json.loads((ROOT / domain / "manifest.json").read_text())


def main(domains: list[str]) -> None:
    todo = {*domains, *bootstrap.CORE_INTEGRATIONS, *bootstrap.LOGGING_AND_HTTP_DEPS_INTEGRATIONS,
            *bootstrap.FRONTEND_INTEGRATIONS, *bootstrap.DEFAULT_INTEGRATIONS}
    seen: set[str] = set()
    requirements: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen or not (ROOT / domain / "manifest.json").is_file():
            continue
        seen.add(domain)
        m = manifest(domain)
        requirements.update(m.get("requirements", []))
        todo.update(m.get("dependencies", []), m.get("after_dependencies", []))
    print("\n".join(sorted(requirements)))
    print(f"{len(seen)} integrations: {' '.join(sorted(seen))}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
