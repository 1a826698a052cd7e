# gunicorn settings. Its access log goes through the same secret-masking filter as Django's.
import math
import os
import shutil
import tempfile

from brokerproject.logging import logging_config

# Prometheus counters are summed over the workers through files in this folder (prometheus-client's
# multiprocess mode); it is emptied when the server starts and a dead worker's files are marked.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "broker-metrics"))


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Callbacks mostly wait on Zoom: many threads per worker, sharing a small database pool
# (DB_POOL_MAX_SIZE) since callbacks hand their connection back before calling Zoom.
threads = int(os.environ.get("WEB_THREADS", "32"))
worker_class = "gthread"
timeout = 30
# A worker told to stop (a deploy, a restart) first lets a token refresh under way finish and
# store Zoom's answer (Zoom rotates the refresh token as it answers, so a refresh cut short can
# cost the user their grant): the refresh's own deadline plus the lease margin, as in settings.
# compose's stop_grace_period (docker-compose.yml) is longer still.
graceful_timeout = math.ceil(
    float(os.environ.get("ZOOM_REFRESH_TIMEOUT", "60"))
    + float(os.environ.get("ZOOM_REFRESH_LEASE_MARGIN_SECONDS", "15"))
)  # gunicorn wants whole seconds
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")  # the proxy's: X-Forwarded-*
accesslog = "-"
logger_class = "brokerproject.gunicorn_logging.BrokerLogger"  # token callbacks log one line, their own
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

logconfig_dict = logging_config(os.environ.get("LOG_LEVEL", "INFO"))  # the same as Django's
