"""The reward-model app's background work, registered with core.jobs when the app is ready."""

from . import judging, rewards, runs


def register_background_work() -> None:
    runs.register_background_work()
    rewards.register_background_work()
    judging.register_background_work()
