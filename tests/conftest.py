import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


@pytest.fixture
def user(db):
    return User.objects.create_user(username="alice", email="alice@example.com", password="correct horse battery")


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(username="staff", email="staff@example.com", password="correct horse battery")


@pytest.fixture
def api_client():
    return APIClient()
