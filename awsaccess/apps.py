from django.apps import AppConfig


class AwsAccessConfig(AppConfig):
    name = "awsaccess"
    verbose_name = "AWS access"
