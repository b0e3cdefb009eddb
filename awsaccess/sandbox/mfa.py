"""Virtual MFA devices that behave like AWS's: EnableMFADevice checks two consecutive TOTP codes
(RFC 6238: SHA-1, 6 digits, 30 s) from the device's seed, and AssumeRole with SerialNumber and
TokenCode checks the code against the device assigned to the caller, on the sandbox clock, and
issues one session per code, as AWS does (a second AssumeRole with it, or with an older one, is
refused until the next step; a refused AssumeRole spends nothing). moto 5.2.5 accepts any codes
and ignores SerialNumber/TokenCode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import threading
from typing import Any

from moto.iam.exceptions import IAMException, NotFoundException
from moto.iam.models import IAMBackend

from awsaccess.sandbox import clock

STEP_SECONDS = 30
DIGITS = 6
# AWS accepts codes a little out of step with its clock; one step either side, like most servers.
TOLERANCE_STEPS = 1
_original_enable = IAMBackend.enable_mfa_device
# Request threads check and record a device's last accepted step under it, so two AssumeRoles
# with one code cannot both pass.
_used_steps_lock = threading.Lock()


class InvalidAuthenticationCode(IAMException):
    code = "InvalidAuthenticationCode"


def totp(seed_base32: str, step: int) -> str:
    key = base64.b32decode(seed_base32)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 10**DIGITS:0{DIGITS}d}"


def _current_step() -> int:
    return int(clock.now().timestamp()) // STEP_SECONDS


def _steps() -> range:
    now = _current_step()
    return range(now - TOLERANCE_STEPS, now + TOLERANCE_STEPS + 1)


def _step_of(seed_base32: str, code: str) -> int | None:
    """The step within tolerance whose code this is, or None."""
    return next(
        (step for step in _steps() if hmac.compare_digest(totp(seed_base32, step), code)), None
    )


def _unused_step(device: Any, code: str) -> int | None:
    """The code's step if it is current and later than the device's last accepted one."""
    step = _step_of(device.base32_string_seed, code)
    last = getattr(device, "breakglass_last_step", None)
    return None if step is None or (last is not None and step <= last) else step


def session_code_is_valid(backend: IAMBackend, user_arn: str, serial: str, code: str) -> bool:
    """Whether `code` is current and unused for the MFA device `serial`, enabled for the calling
    user (authorization asks; `session_code_use` spends it once the session is issued)."""
    device = backend.virtual_mfa_devices.get(serial)
    if device is None or device.user is None or device.user.arn != user_arn:
        return False
    return _unused_step(device, code) is not None


def session_code_use(device: Any, code: str) -> bool:
    """Spend the code, and every earlier one, as AWS does when it issues an MFA session: False
    if another session took it first."""
    with _used_steps_lock:
        step = _unused_step(device, code)
        if step is None:
            return False
        device.breakglass_last_step = step
        return True


def _enable_mfa_device(
    self: IAMBackend,
    user_name: str,
    serial_number: str,
    authentication_code_1: str,
    authentication_code_2: str,
) -> None:
    device = self.virtual_mfa_devices.get(serial_number)
    if device is None:
        raise NotFoundException(f"VirtualMFADevice with serial number {serial_number} not found")
    seed = device.base32_string_seed
    consecutive = any(
        hmac.compare_digest(totp(seed, step - 1), authentication_code_1)
        and hmac.compare_digest(totp(seed, step), authentication_code_2)
        for step in _steps()
    )
    if not consecutive:
        raise InvalidAuthenticationCode("Authentication code for device is not valid.")
    _original_enable(self, user_name, serial_number, authentication_code_1, authentication_code_2)


def install() -> None:
    IAMBackend.enable_mfa_device = _enable_mfa_device  # type: ignore[method-assign]  # patching moto in place
