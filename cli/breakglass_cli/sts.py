"""One AWS call, signed by hand: STS AssumeRole with an MFA code, for `breakglass kit open`.

The client carries no AWS SDK (a custodian's laptop installs only this package); the call is
Signature Version 4 over the query protocol, exactly as AWS documents it, sent to the regional
STS endpoint (the role's trust policy pins the region).
"""

import hashlib
import hmac
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

import httpx

STS_VERSION = "2011-06-15"
TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class AssumeRoleCall:
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    role_arn: str = ""
    session_name: str = ""
    source_identity: str = ""
    duration_seconds: int = 3600
    mfa_serial: str = ""
    mfa_code: str = field(default="", repr=False)


class StsRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def sts_endpoint(region: str, endpoint_url: str | None) -> str:
    if endpoint_url:
        return endpoint_url.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_headers(call: AssumeRoleCall, body: bytes, now: datetime) -> dict[str, str]:
    """SigV4 headers for a POST of `body` to the endpoint's root."""
    host = urlsplit(call.endpoint_url).netloc
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    content_type = "application/x-www-form-urlencoded; charset=utf-8"
    canonical_headers = f"content-type:{content_type}\nhost:{host}\nx-amz-date:{amz_date}\n"
    names = "content-type;host;x-amz-date"
    request = "\n".join(
        ["POST", "/", "", canonical_headers, names, hashlib.sha256(body).hexdigest()]
    )
    scope = f"{day}/{call.region}/sts/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + call.secret_access_key).encode(), day)
    for part in (call.region, "sts", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "Host": host,
        "X-Amz-Date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={call.access_key_id}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}",
    }


def _text(root: ElementTree.Element, name: str) -> str:
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == name:
            return (element.text or "").strip()
    return ""


def assume_role(call: AssumeRoleCall) -> dict[str, str]:
    """→ {access_key_id, secret_access_key, session_token, expiration}; StsRefused when AWS
    answers with an error, OSError-like httpx errors when it cannot be reached."""
    body = urlencode(
        {
            "Action": "AssumeRole",
            "Version": STS_VERSION,
            "RoleArn": call.role_arn,
            "RoleSessionName": call.session_name,
            "SourceIdentity": call.source_identity,
            "DurationSeconds": str(call.duration_seconds),
            "SerialNumber": call.mfa_serial,
            "TokenCode": call.mfa_code,
        },
        quote_via=quote,
    ).encode()
    headers = signed_headers(call, body, datetime.now(UTC))
    response = httpx.post(
        call.endpoint_url + "/", content=body, headers=headers, timeout=TIMEOUT_SECONDS
    )
    try:
        root = ElementTree.fromstring(response.text)  # noqa: S314 (AWS's own answer, no DTDs)
    except ElementTree.ParseError:
        raise StsRefused(f"HTTP{response.status_code}", "STS did not answer in XML") from None
    if response.status_code != 200:
        raise StsRefused(_text(root, "Code") or "Error", _text(root, "Message"))
    return {
        "access_key_id": _text(root, "AccessKeyId"),
        "secret_access_key": _text(root, "SecretAccessKey"),
        "session_token": _text(root, "SessionToken"),
        "expiration": _text(root, "Expiration"),
    }
