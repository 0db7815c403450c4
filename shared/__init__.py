"""Common library of the offsetstream services: settings, ids, plugins, Kafka and PostgreSQL plumbing.

Domain logic never lives here; each stage keeps its own under ``services/<stage>/domain.py``.
"""
