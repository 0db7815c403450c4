"""The notification stage of offsetstream."""
