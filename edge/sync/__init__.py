"""The box's link to its hub over MQTT."""
