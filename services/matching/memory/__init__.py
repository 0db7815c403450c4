"""The matching ledger in dictionaries: the same :class:`~services.matching.repository.MatchingRepository`
semantics as the PostgreSQL repository (``store``), query by query, so the engine's unit tests run every
scenario without a database. Amounts are kept to the cent as ``numeric(14,2)`` keeps them.

One instance holds every tenant; nothing is locked (one test drives one engine at a time).
"""

from services.matching.memory._tables import BalanceNegative
from services.matching.memory.forwarding import MemForwarding
from services.matching.memory.money import MemMoney
from services.matching.memory.pairs import MemPairs
from services.matching.memory.receivables import MemReceivables
from services.matching.memory.work_items import MemWorkItems

__all__ = ["BalanceNegative", "InMemoryMatchingRepository"]


class InMemoryMatchingRepository(MemReceivables, MemPairs, MemMoney, MemForwarding, MemWorkItems):
    """Matching's tables as dictionaries keyed like their primary keys; rows are frozen and replaced."""
