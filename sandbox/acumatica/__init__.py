"""A stateful Acumatica simulator behind the real URLs (Default endpoint, 20.200.001–24.200.001).

Modules, by resource: simulator.py (state, routes, the request pipeline), sessions.py (OAuth, cookie
login, licence seats), entities.py (list/get/put/delete, rendering, validation), odata.py (query
parameters), actions.py (actions, long operations, the one-operation-per-session rule), schema.py
(swagger.json, $adHocSchema), people.py (the sandbox's clock, a person's edits), push.py (push
notifications), seed.py and demo.py (records and the demo firm).

Every test, the playground and the served sandboxes drive it through the same controls (core.py):
`sim.control("name", **params)` in-process, `POST <base_url>/_sandbox/<name>` when served.
Bodies the vendor does not document precisely are marked UNVERIFIED (reference/acumatica.md) and
chosen to look like Acumatica's `HttpError`.
"""

from .common import (
    BUILD_VERSION,
    ENTITY_KEYS,
    LOGIN_LIMIT_TEXT,
    LONG_OPERATION_TEXT,
    PUSH_QUERIES,
    VERSIONS,
    http_error,
    no_entity,
)
from .demo import build_demo
from .odata import parse_filter
from .seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER
from .simulator import AcumaticaSimulator

__all__ = [
    "BUILD_VERSION",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "ENTITY_KEYS",
    "LOGIN_LIMIT_TEXT",
    "LONG_OPERATION_TEXT",
    "PUSH_QUERIES",
    "VERSIONS",
    "AcumaticaSimulator",
    "build_demo",
    "http_error",
    "no_entity",
    "parse_filter",
]
