from django.apps import AppConfig


class PreferenceDataConfig(AppConfig):
    name = "preference_data"
    verbose_name = "Comparison datasets"

    def ready(self) -> None:
        from .services.background import register_background_work

        register_background_work()
