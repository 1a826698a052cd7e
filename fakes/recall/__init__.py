"""A fake Recall.ai that follows the contracts in shared/docs/api-contracts.md.

Regions are path prefixes of one server (base URL http://host:port/<region>), each with its own
API key. It has the firewall rule against 'localhost' in payloads, Zoom OAuth apps and their
webhook receiver (which re-verifies Zoom's signature over the bytes it gets), credentials in
both modes, and bots that GET their token URLs at join time, check the tokens with the fake
Zoom and report their status with Standard Webhooks signatures.

Run alone: python -m fakes.recall --port 9200 --zoom http://127.0.0.1:9100
"""

from .common import standard_webhook_headers
from .server import FakeRecall

__all__ = ["FakeRecall", "standard_webhook_headers"]
