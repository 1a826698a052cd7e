from django.contrib.admin.apps import AdminConfig


class BrokerAdminConfig(AdminConfig):
    """Django's admin, with the overview (brokerproject.overview) as its home page."""

    default_site = "brokerproject.overview.BrokerAdminSite"
