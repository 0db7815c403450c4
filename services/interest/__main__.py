"""Run the interest stage: `python -m services.interest worker` (Faust's CLI)."""

from services.interest.app import from_environment

if __name__ == "__main__":
    from_environment().app.main()
