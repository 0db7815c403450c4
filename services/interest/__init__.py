"""The interest stage of offsetstream."""
