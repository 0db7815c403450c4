"""Run the intake stage: `python -m services.intake worker` (Faust's CLI)."""

from services.intake.app import app

if __name__ == "__main__":
    app.main()
