"""Which partition a customer lands in: Kafka's default partitioner (murmur2 of the key bytes).

The replay uses this to split customers exactly as producers using the default
partitioner do, so a replay with ``--partitions N`` mirrors an N-partition topic.
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for this key.

    >>> partition_for("C000001", 1)
    0
    """
    return (murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
