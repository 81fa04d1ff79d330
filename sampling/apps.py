from django.apps import AppConfig


class SamplingConfig(AppConfig):
    name = "sampling"
    verbose_name = "Sampling"

    def ready(self) -> None:
        from .services import register_background_work

        register_background_work()
