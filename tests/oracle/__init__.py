"""An independent batch oracle of the reconciliation (see README.md here): DOMAIN.md rules, no service code."""
