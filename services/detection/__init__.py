"""The detection stage of offsetstream."""
