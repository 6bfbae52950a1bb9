"""The box's local web server: the kiosk page, its JSON API, health and metrics."""
