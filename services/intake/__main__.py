"""Run the intake stage: `python -m services.intake worker` (Faust's CLI)."""

from services.intake.app import from_environment

if __name__ == "__main__":
    from_environment().app.main()
