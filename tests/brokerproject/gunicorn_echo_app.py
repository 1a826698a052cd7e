"""A WSGI app that answers what gunicorn made of the request (for test_gunicorn_config.py)."""

import json


def app(environ, start_response):
    seen = {key: environ.get(key, "") for key in ("SCRIPT_NAME", "PATH_INFO", "wsgi.url_scheme")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
