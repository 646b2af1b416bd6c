"""``python -m plughost.interfaces.http``: print the OpenAPI document (for docs/openapi.json)."""

import json
import sys

from plughost.interfaces.http.app import openapi_document

sys.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
