"""Run the interest stage: `python -m services.interest worker` (Faust's CLI)."""

from services.interest.app import app

if __name__ == "__main__":
    app.main()
