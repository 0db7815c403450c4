"""Run the notification stage: `python -m services.notification worker` (Faust's CLI)."""

from services.notification.app import app

if __name__ == "__main__":
    app.main()
