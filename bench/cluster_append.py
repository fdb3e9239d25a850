"""Per-unit append cost on a three-node cluster against two bare transactional commits there.

``bench/kafka_append.py``'s measurement, run on the cluster of ``scripts/services up
--brokers 3``: the namespace's topics get replication factor 3 and ``min.insync.replicas=2``
by default there, so every commit waits for a second replica, on both sides.

    FLAMINGOCK_SERVICES_DIR=.services/cluster scripts/services up --brokers 3 kafka
    eval "$(FLAMINGOCK_SERVICES_DIR=.services/cluster scripts/services env)"
    python bench/cluster_append.py [UNITS]
"""

from __future__ import annotations

import sys

import kafka_append  # bench/ is on sys.path when this file runs as a script
from confluent_kafka.admin import AdminClient

CLUSTER = 3


def main() -> None:
    metadata = AdminClient({"bootstrap.servers": kafka_append.BOOTSTRAP}).list_topics(timeout=15)
    if len(metadata.brokers) < CLUSTER:
        sys.exit(f"{kafka_append.BOOTSTRAP} has {len(metadata.brokers)} broker(s), not a cluster "
                 f"of {CLUSTER}: start one with scripts/services up --brokers 3")
    print(f"cluster of {len(metadata.brokers)} brokers: topics get replication factor 3, "
          "min.insync.replicas 2")
    kafka_append.main()


if __name__ == "__main__":
    main()
