"""The adapters: the ports of :mod:`flamingock_es.core.ports` on real technology.

``local/`` is the embedded default (an fsynced file log, an OS file lock, framed request and
snapshot files); ``kafka/`` puts the log, the lock, the requests and the snapshots on Kafka.
Each translates its driver's errors into :mod:`flamingock_es.errors`. Nothing here chooses
an adapter: the composition root (:mod:`flamingock_es.namespace`) does, from the settings.
"""
