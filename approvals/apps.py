from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Break-glass approvals"

    def ready(self) -> None:
        # Administration goes on the record whichever path makes it (admin, command, ORM).
        from approvals.services.administration import administration_signals_connect

        administration_signals_connect()
