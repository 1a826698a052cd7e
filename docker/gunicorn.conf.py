# gunicorn settings. Its access log goes through the same secret-masking filter as Django's.
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Callbacks mostly wait on Zoom: many threads per worker, sharing a small database pool
# (DB_POOL_MAX_SIZE) since callbacks hand their connection back before calling Zoom.
threads = int(os.environ.get("WEB_THREADS", "32"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_secrets": {"()": "brokerproject.logging.MaskSecretsFilter"}},
    "formatters": {"keyvalue": {"()": "brokerproject.logging.KeyValueFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "keyvalue",
            "filters": ["mask_secrets"],
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
