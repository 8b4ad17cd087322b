"""WSGI entry point. Webhook deliveries (`/hooks/…`) take a lean handler: the same URLconf and views,
without the console's middleware (sessions, authentication, CSRF, messages, clickjacking headers — none
of which a machine-to-machine POST uses); everything else goes through Django's full stack. Issue 17:
the receive path does only what must be synchronous."""

import contextlib
import logging
import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings")
HOOKS_PREFIX = "/hooks/"


class HookHandler(WSGIHandler):
    """Django's handler with no middleware (the hook views are csrf-exempt and use no session), which
    keeps each hook path's URL match."""

    MATCHES_KEPT = 1024  # paths (one per endpoint uuid); all forgotten at once when full

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._matches: dict[tuple[str, str], object] = {}

    def resolve_request(self, request):
        """Django's resolution, run once per path and URLconf in this process: a hook path names one
        endpoint by its uuid and resolves to the same view and arguments every time. The view gets the
        arguments unpacked (a copy), so a kept match is never changed. A path that does not resolve
        (404) is not kept."""
        from django.conf import settings

        key = (getattr(request, "urlconf", None) or settings.ROOT_URLCONF, request.path_info)
        match = self._matches.get(key)
        if match is None:
            match = super().resolve_request(request)
            if len(self._matches) >= self.MATCHES_KEPT:
                self._matches.clear()
            self._matches[key] = match
        else:
            request.resolver_match = match
        return match

    def load_middleware(self, is_async: bool = False) -> None:
        """What Django's own load_middleware builds for an empty MIDDLEWARE list."""
        from django.core.handlers.exception import convert_exception_to_response

        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


def warm_up() -> None:
    """Import the URLconf, every view behind the hook paths and the task broker now, when the worker
    starts: otherwise each worker's first delivery pays for them (about 100 ms and 55 ms here; they were
    the slowest hook answers of the retention-purge benchmark). Nothing here needs the database or a
    connection to the broker."""
    from django.urls import Resolver404, get_resolver

    resolver = get_resolver()
    for path in (f"{HOOKS_PREFIX}asana/{'0' * 8}-{'0' * 4}-{'0' * 4}-{'0' * 4}-{'0' * 12}/", "/healthz"):
        with contextlib.suppress(Resolver404):  # a URLconf without that route: nothing to warm
            resolver.resolve(path)
    import integrations.flows.inbound.receivers  # noqa: F401 - the receivers and their queues
    from integrations.base.enqueue import broker

    try:
        broker()  # django-q2's broker and its client library (~55 ms of imports); connects lazily
    except Exception:  # noqa: BLE001 - a broker that cannot be built now is built (or fails) per delivery
        logging.getLogger(__name__).warning("could not prepare the task broker at start", exc_info=True)


def _application():
    console = get_wsgi_application()
    hooks = HookHandler()
    warm_up()

    def application(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(HOOKS_PREFIX):
            return hooks(environ, start_response)
        return console(environ, start_response)

    return application


application = _application()
