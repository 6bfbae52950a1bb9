"""What crosses a wire: MQTT topics, message schemas, canonical JSON and the hash chain,
and the shared domain rules (resident ID numbers, division codes, phone numbers, roles).

Pure: nothing in this package does I/O. ``edge``, ``hub`` and ``signaling`` import it;
it imports none of them.
"""
