"""Run the matching stage: `python -m services.matching worker` (Faust's CLI)."""

from services.matching.app import app

if __name__ == "__main__":
    app.main()
