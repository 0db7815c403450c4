"""Run the detection stage: `python -m services.detection worker` (Faust's CLI)."""

from services.detection.app import from_environment

if __name__ == "__main__":
    from_environment().app.main()
