"""The staff console (issue 19): web pages over the ledger's staff views; every change is a Kafka event."""
