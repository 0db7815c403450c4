"""Run the matching stage: `python -m services.matching worker` (Faust's CLI)."""

from services.matching.app import from_environment

if __name__ == "__main__":
    from_environment().app.main()
