"""What the hub takes in from its broker."""
