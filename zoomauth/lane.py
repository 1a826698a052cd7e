"""The token callbacks' own lane through the middleware.

Recall's bots GET /recall/callbacks/<kind>/ with no cookie, no session and no CSRF token, and
want a plain-text answer: sessions, CSRF, authentication, messages, clickjacking headers, axes,
static files and URL resolution are work a callback never uses. This middleware sits right after
the ones every request needs (SecurityMiddleware: HTTPS and host rules; the encryption-key check)
and hands a callback straight to its DRF view, which keeps every guarantee it gives itself
(Recall's signature and the secret, throttles, the audit of every answer, self-healing).

Anything that is not exactly a callback path goes down the full stack as before.
"""

import re

from .callbacks import TokenCallbackView

CALLBACK_PATH = re.compile(r"^/recall/callbacks/(?P<kind>[-a-zA-Z0-9_]+)/$")


class CallbackLaneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.view = TokenCallbackView.as_view()

    def __call__(self, request):
        found = CALLBACK_PATH.match(request.path_info)
        if found is None:
            return self.get_response(request)
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it (DisallowedHost: 400)
        response = self.view(request, kind=found["kind"])
        return response.render() if hasattr(response, "render") and not response.is_rendered else response
