"""event-manager: REST API for a professional networking event platform."""
