import pytest


@pytest.fixture
def anon(client, connection):
    """A client that is not signed in, as Recall is, with a connection made through the fake Zoom."""
    client.logout()
    return client
