"""The hub's HTTP API (``/api/v1``) and the console's pages."""
