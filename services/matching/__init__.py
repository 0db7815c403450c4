"""The matching stage of offsetstream."""
