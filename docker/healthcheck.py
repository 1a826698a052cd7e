"""The web container's health check: GET /healthz on the local port with a Host header Django
accepts (the first ALLOWED_HOSTS name; a leading dot or '*' becomes a plain name)."""

import os
import sys
import urllib.request


def main() -> int:
    first = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip()
    host = first.lstrip(".") if first not in ("", "*") else "localhost"
    url = os.environ.get("HEALTHCHECK_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz")
    request = urllib.request.Request(url, headers={"Host": host, "X-Forwarded-Proto": "https"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310 - a fixed local URL
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
