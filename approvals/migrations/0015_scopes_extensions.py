# Issue 17: scopes, source networks, extensions.
import uuid

import approvals.models.scopes

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0014_administration_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [

        migrations.AddField(
            model_name='accessprofile',
            name='allowed_networks',
            field=models.JSONField(blank=True, default=list, validators=[approvals.models.scopes.networks_validator], help_text="CIDRs the grants' sessions may call AWS from (calls AWS services make on their behalf excepted); empty: anywhere. Set with manage.py profile_networks."),
        ),
        migrations.AddField(
            model_name='accessrequest',
            name='granted_scope',
            field=models.JSONField(blank=True, help_text='The scope and networks as granted, frozen at activation.', null=True),
        ),
        migrations.CreateModel(
            name='AccessScope',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.SlugField()),
                ('description', models.CharField(blank=True, max_length=300)),
                ('policy_document', models.JSONField(blank=True, help_text='Inline session policy (IAM JSON); empty for managed policies only.', null=True)),
                ('managed_policy_arns', models.JSONField(blank=True, default=list, help_text='Managed policies passed as PolicyArns.')),
                ('allowed_networks', models.JSONField(blank=True, default=list, validators=[approvals.models.scopes.networks_validator], help_text="CIDRs the scope's sessions may call from, within the profile's own; empty: the profile's.")),
                ('is_default', models.BooleanField(default=False)),
                ('revision', models.PositiveIntegerField(default=1)),
                ('updated_at', models.DateTimeField()),
                ('profile', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='scopes', to='approvals.accessprofile')),
            ],
            options={
                'ordering': ['profile', 'name'],
            },
        ),
        migrations.AddField(
            model_name='accessrequest',
            name='scope',
            field=models.ForeignKey(blank=True, help_text='The scope asked for; what it means is signed with the request.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='approvals.accessscope'),
        ),
        migrations.CreateModel(
            name='GrantExtension',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('requester_name', models.CharField(max_length=150)),
                ('minutes', models.PositiveIntegerField()),
                ('reason', models.TextField(max_length=1000)),
                ('from_expires_at', models.DateTimeField(help_text='The deadline when it was asked for.')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('applied', 'Applied'), ('rejected', 'Rejected'), ('timed_out', 'Timed Out'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('created_at', models.DateTimeField()),
                ('approval_deadline', models.DateTimeField()),
                ('approved_at', models.DateTimeField(blank=True, null=True)),
                ('applied_at', models.DateTimeField(blank=True, null=True)),
                ('ended_at', models.DateTimeField(blank=True, null=True)),
                ('failure_reason', models.TextField(blank=True)),
                ('replaced_access_key_id', models.CharField(blank=True, help_text='The session key fresh credentials replaced (not secret; names the session).', max_length=128)),
                ('request', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='extensions', to='approvals.accessrequest')),
                ('requester', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['created_at'],
            },
        ),
        migrations.CreateModel(
            name='ExtensionApproval',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('approver_name', models.CharField(max_length=150)),
                ('decision', models.CharField(choices=[('approve', 'Approve'), ('reject', 'Reject')], max_length=8)),
                ('reason', models.TextField(blank=True, max_length=1000)),
                ('device_id', models.CharField(max_length=120)),
                ('content_digest', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField()),
                ('source_ip', models.GenericIPAddressField(blank=True, null=True)),
                ('time_step', models.BigIntegerField(blank=True, null=True)),
                ('signature_key_id', models.CharField(blank=True, max_length=32)),
                ('signature', models.CharField(blank=True, max_length=128)),
                ('approver', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('extension', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='approvals', to='approvals.grantextension')),
            ],
            options={
                'ordering': ['created_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='accessscope',
            constraint=models.UniqueConstraint(fields=('profile', 'name'), name='scope_name_per_profile'),
        ),
        migrations.AddConstraint(
            model_name='accessscope',
            constraint=models.UniqueConstraint(condition=models.Q(('is_default', True)), fields=('profile',), name='one_default_scope_per_profile'),
        ),
        migrations.AddIndex(
            model_name='grantextension',
            index=models.Index(fields=['status', 'approval_deadline'], name='approvals_g_status_79f27f_idx'),
        ),
        migrations.AddConstraint(
            model_name='grantextension',
            constraint=models.CheckConstraint(condition=models.Q(('minutes__gte', 1)), name='extension_minutes_positive'),
        ),
        migrations.AddConstraint(
            model_name='grantextension',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'approved'])), fields=('request',), name='one_open_extension_per_request'),
        ),
        migrations.AddConstraint(
            model_name='extensionapproval',
            constraint=models.UniqueConstraint(fields=('extension', 'approver'), name='one_extension_signature_per_approver'),
        ),
    ]
