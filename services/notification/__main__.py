"""Run the notification stage: `python -m services.notification worker` (Faust's CLI)."""

from services.notification.app import from_environment

if __name__ == "__main__":
    from_environment().app.main()
