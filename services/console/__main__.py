"""``python -m services.console``: run the staff console."""

from services.console.app import main

main()
