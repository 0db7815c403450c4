"""The operator and staff application on top of the stages: the ``offsetstream`` CLI, the staff views of the
ledger, the drop folder, dead-letter tools, demand letters, reports and the local stack (``make run``).

It may import every layer below it (contracts, shared, policies, services); nothing below imports it.
"""
