"""The least a server can do for a GET: a bare WSGI callable answering a short text, served by
gunicorn with the broker's own config (docker/gunicorn.conf.py). bench/callbacks.py prints the
callbacks' figures beside it: what the server costs, so the rest is the broker's."""


def application(environ, start_response):
    body = b"eyJ.bare-token"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
