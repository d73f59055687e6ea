"""orderflow's topic names (CONTRACT.md section 4) under a per-test prefix."""

from __future__ import annotations

BASE_TOPICS = ("payment.success", "order.fulfilled", "order.compensation", "payment.success.dlq")


def topic_names(retry_tiers: int = 3) -> list[str]:
    """Unprefixed names of every orderflow topic with `retry_tiers` notify
    retry topics (notify.retry.1 .. notify.retry.N)."""
    return [*BASE_TOPICS, *(f"notify.retry.{i}" for i in range(1, retry_tiers + 1)), "notify.dlq"]


class Namespace(str):
    """A topic prefix such as "t1a2b3c4d.": the string itself is the prefix
    (what OF_TOPIC_PREFIX gets). ns.topic("payment.success") gives the full
    name; ns.topics lists every full name created; ns.retry_tiers is N."""

    retry_tiers: int

    def __new__(cls, prefix: str, retry_tiers: int = 3) -> "Namespace":
        obj = super().__new__(cls, prefix)
        obj.retry_tiers = retry_tiers
        return obj

    @property
    def prefix(self) -> str:
        return str(self)

    def topic(self, name: str) -> str:
        return f"{self}{name}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(n) for n in topic_names(self.retry_tiers)]

    def group(self, name: str) -> str:
        """A consumer group id under the prefix (services prefix theirs too)."""
        return f"{self}{name}"
