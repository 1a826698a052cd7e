import os

from django.core.wsgi import get_wsgi_application

from brokerproject.arrival import stamp_arrival

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerproject.settings")

# Outermost: the arrival stamp a token callback's time budget counts from.
application = stamp_arrival(get_wsgi_application())
