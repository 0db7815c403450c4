"""Run the detection stage: `python -m services.detection worker` (Faust's CLI)."""

from services.detection.app import app

if __name__ == "__main__":
    app.main()
