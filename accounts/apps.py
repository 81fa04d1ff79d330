from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and vendors"

    def ready(self) -> None:
        from . import backends  # noqa: F401  (counts failed log-ins: the user_login_failed receiver)
