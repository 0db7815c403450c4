"""Run the matching stage: `python -m services.matching worker` (Faust's CLI)."""

from shared import event_loop, gc_tuning

event_loop.install()  # before anything makes a loop

from services.matching.app import from_environment  # noqa: E402

if __name__ == "__main__":
    stage = from_environment()
    gc_tuning.tune()  # after the stage is built, so what it holds for good is frozen
    stage.app.main()
