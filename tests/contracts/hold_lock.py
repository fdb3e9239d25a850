"""Holds a namespace's lock until killed: ``python hold_lock.py BUS NAMESPACE``."""

from __future__ import annotations

import sys
import time

from flamingock_es.namespace import open_backend

backend = open_backend(sys.argv[1], sys.argv[2])
lease = backend.lock.acquire("doomed-holder", 60)
print("held", flush=True)
while True:
    time.sleep(0.2)
    lease.check()
