"""Values the services fixture configures (tests sign and authenticate with these)."""

WEBHOOK_SECRET = "test-secret"
ADMIN_TOKEN = "test-admin-token"
NOTIFY_SECRET = "test-notify-secret"
TOPIC_PARTITIONS = 3


def retry_delays(tiers: int) -> str:
    """Default OF_NOTIFY_RETRY_DELAYS in tests: 1s,2s,...,Ns (N = tiers)."""
    return ",".join(f"{i}s" for i in range(1, tiers + 1))
