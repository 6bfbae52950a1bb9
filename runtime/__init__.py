"""The I/O plumbing that ``edge``, ``hub`` and ``signaling`` share: config loading, the SQLite
writer thread with migrations, the asyncio MQTT connection loop, zeroconf, metrics, logging.

Depends only on ``contracts``; knows nothing of boxes, hubs or cases.
"""
