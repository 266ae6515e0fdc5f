"""Gunicorn settings for docling-service-web.service.

Values come from the environment file the unit reads. Under systemd the
listening socket comes from docling-service-web.socket (socket activation),
and `bind` is used only when Gunicorn is started without it, by hand or by
the tests.
"""

import os

from core.logging import logging_config

bind = [os.environ.get("GUNICORN_BIND") or "unix:/run/docling-svc/gunicorn.sock"]

# gthread: each worker process serves GUNICORN_THREADS requests at once.
# Nginx streams uploads through (proxy_request_buffering off), so a slow
# client occupies one thread for its whole upload, not a whole process. With
# gthread the timeout below applies to a worker process that stops
# responding, not to one long request.
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
graceful_timeout = 30
keepalive = 5
# Replace each worker after about this many requests, to bound memory growth.
max_requests = 2000
max_requests_jitter = 200

# systemd starts, reloads (SIGHUP) and stops Gunicorn, so the control socket
# (Gunicorn 25.1+, by default under $HOME) is not needed.
control_socket_disable = True

# Only Nginx can connect to the socket (mode 0660, group www-data), so the
# X-Forwarded-* headers it sets are trusted.
forwarded_allow_ips = "*"

# Nginx writes the access log, with the request id; Gunicorn logs only its
# own events, in the same format as the application (LOG_FORMAT).
accesslog = None
logconfig_dict = logging_config(
    os.environ.get("LOG_FORMAT") or "json", os.environ.get("LOG_LEVEL") or "INFO"
)
# Gunicorn turns propagation off for its loggers; this sends its lines to
# the console handler above.
logconfig_dict["loggers"]["gunicorn.error"] = {"level": "INFO", "propagate": True}
