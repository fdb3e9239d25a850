"""The core: the audit events, their bytes and hash chain, the fold, the ports, snapshots,
signatures and the one path every reader and writer of a log takes.

It imports nothing of the package but itself and :mod:`flamingock_es.errors`.
"""
