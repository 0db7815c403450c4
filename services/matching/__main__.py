"""Run the matching stage: `python -m services.matching worker` (Faust's CLI)."""

from shared import event_loop

event_loop.install()  # before anything makes a loop

from services.matching.app import from_environment  # noqa: E402

if __name__ == "__main__":
    from_environment().run()
