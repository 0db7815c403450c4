"""Intake stage: payer files in, remittance events out (feed parsers live here)."""
