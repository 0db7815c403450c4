"""Run the detection stage: `python -m services.detection worker` (Faust's CLI)."""

from shared import event_loop

event_loop.install()  # before anything makes a loop

from services.detection.app import from_environment  # noqa: E402

if __name__ == "__main__":
    from_environment().run()
