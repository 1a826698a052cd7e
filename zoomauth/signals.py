"""What happens to a connection, for the apps built on zoomauth (recallbots, webhooks), which
connect their receivers from their AppConfig.ready(): zoomauth never names them."""

from django.dispatch import Signal

# The connection signals are sent inside the transaction of the state change they report: what a
# receiver writes (the customer's event, an outbox row) commits with it or not at all. A receiver
# that calls a remote or enqueues a task does so from transaction.on_commit.
# Sent when a connection's tokens were stored (connect or reconnect).
connection_connected = Signal()  # kwargs: connection_id
# Sent when a connection was disconnected and its tokens wiped.
connection_disconnected = Signal()  # kwargs: connection_id
# Sent once when Zoom refused a connection's refresh token: its user must connect again.
connection_needs_reconnect = Signal()  # kwargs: connection_id
# Sent when another user finished a consent for a connection that is not theirs (refused).
connection_claim_refused = Signal()  # kwargs: connection_id, claimed_by_user_id
# Sent after a connection's callback secret was rotated (its callback URLs changed).
callback_secret_rotated = Signal()  # kwargs: connection_id
