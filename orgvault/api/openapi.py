"""Print the OpenAPI 3.1 document of the API: ``python -m orgvault.api.openapi > docs/openapi.json``.

The committed ``docs/openapi.json`` must equal this output (a test checks it)."""

from __future__ import annotations

import json
import sys

from orgvault.api.app import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
