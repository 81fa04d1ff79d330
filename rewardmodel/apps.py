from django.apps import AppConfig


class RewardModelConfig(AppConfig):
    name = "rewardmodel"
    verbose_name = "Reward models"

    def ready(self) -> None:
        from .services.background import register_background_work

        register_background_work()
