"""Re-seal every value encrypted at rest under the newest BREAKGLASS_ENCRYPTION_KEYS key, so an
old (perhaps leaked) key can be removed from the configuration.

Idempotent and resumable: values already under the newest key are left alone, and each batch is
committed on its own, so an interrupted run is simply run again.
"""

from dataclasses import dataclass, field

from django.db import models, transaction

from approvals.models import IssuedCredential, SealedTOTPDevice, WebhookEndpoint
from approvals.sealing import SealBroken, reseal
from approvals.timeline import timeline_append

# Every column that holds approvals.sealing output. Empty values are wiped credentials.
SEALED_COLUMNS: tuple[tuple[type[models.Model], str], ...] = (
    (SealedTOTPDevice, "sealed_key"),
    (IssuedCredential, "sealed"),
    (WebhookEndpoint, "sealed_secret"),
)


@dataclass
class RotationReport:
    resealed: int = 0
    already_current: int = 0
    # "model pk" of values no configured key opens (an old key was removed too early).
    unreadable: list[str] = field(default_factory=list)


def sealed_values_rotate(*, batch_size: int = 200) -> RotationReport:
    report = RotationReport()
    for model, column in SEALED_COLUMNS:
        last_pk = None
        while True:
            with transaction.atomic():
                rows = model._default_manager.exclude(**{column: ""}).order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                batch = list(rows.select_for_update().values_list("pk", column)[:batch_size])
                for pk, ciphertext in batch:
                    _row_reseal(model, column, pk, ciphertext, report)
            if len(batch) < batch_size:
                break
            last_pk = batch[-1][0]
    if report.resealed or report.unreadable:
        with transaction.atomic():
            timeline_append(
                access_request=None,
                code="approvals.encryption_keys.rotated",
                outcome="failure" if report.unreadable else "success",
                detail={
                    "resealed": report.resealed,
                    "already_current": report.already_current,
                    "unreadable": report.unreadable[:50],
                },
            )
    return report


def _row_reseal(
    model: type[models.Model], column: str, pk: object, ciphertext: str, report: RotationReport
) -> None:
    try:
        resealed = reseal(ciphertext)
    except SealBroken:
        report.unreadable.append(f"{model._meta.label} {pk}")
        return
    if resealed is None:
        report.already_current += 1
        return
    # Conditional on the value we read, so a value changed meanwhile (a credential wiped, a
    # device re-enrolled) is never overwritten with the old one re-sealed.
    model._default_manager.filter(pk=pk, **{column: ciphertext}).update(**{column: resealed})
    report.resealed += 1
