"""Read an AWS API call back from the wire: who signed it, which service, region and operation,
its parameters and its outcome. Covers the three protocols the sandbox serves: query (IAM, STS,
SQS's older form), JSON (EventBridge, CloudTrail, SQS) and S3's REST.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

from awsaccess.sandbox.calls import CapturedCall

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Parameters AWS never shows in CloudTrail (secrets and one-time codes).
_SECRET_PARAMETERS = {"password", "newpassword", "oldpassword", "tokencode", "secretaccesskey"}
_SKIPPED_QUERY = {"Action", "Version"}
_GLOBAL_SERVICES = {"iam", "organizations", "route53", "cloudfront"}


@dataclass(frozen=True)
class ApiCall:
    access_key_id: str
    service: str  # signing name: "s3", "iam", "sts", "events", "sqs", "cloudtrail"
    region: str
    event_name: str
    request_parameters: dict[str, Any] | None
    error_code: str | None
    error_message: str | None


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


def _camel_keys(value: Any) -> Any:
    """CloudTrail spells request parameters in lowerCamelCase, nested ones too."""
    if isinstance(value, dict):
        return {
            _lower_camel(str(key)): _camel_keys(item)
            for key, item in value.items()
            if str(key).lower() not in _SECRET_PARAMETERS
        }
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value


def _unflatten(pairs: dict[str, str]) -> dict[str, Any]:
    """`Tags.member.1.Key=a` → {"Tags": [{"Key": "a"}]}: the query protocol's lists and maps."""
    root: dict[str, Any] = {}
    for dotted, value in sorted(pairs.items()):
        parts = [part for part in dotted.split(".") if part not in ("member", "entry")]
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            key: Any = int(part) - 1 if part.isdigit() else part
            if isinstance(node, list):
                while len(node) <= key:
                    node.append({})
                if last:
                    node[key] = value
                else:
                    node = node[key]
                continue
            if last:
                node[key] = value
            else:
                following = parts[index + 1]
                node = node.setdefault(key, [] if following.isdigit() else {})
    return root


def _query_pairs(text: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _signature(call: CapturedCall) -> tuple[str, str, str] | None:
    match = _CREDENTIAL.search(call.headers.get("authorization", ""))
    if match is None:
        query = _query_pairs(call.query)
        match = _CREDENTIAL.search("Credential=" + query.get("X-Amz-Credential", "") + " ")
    if match is None:
        return None
    return match.group(1), match.group(2), match.group(3)


def _error(call: CapturedCall) -> tuple[str | None, str | None]:
    if call.status < 400:
        return None, None
    body = call.response_body
    try:
        document = json.loads(body)
        code = str(document.get("__type", "")).split("#")[-1] or None
        return code, document.get("message") or document.get("Message")
    except (ValueError, AttributeError):
        pass
    try:
        tree = ElementTree.fromstring(body)  # noqa: S314 (moto's own response)
    except ElementTree.ParseError:
        return call.response_headers.get("x-amzn-errortype"), None
    code = next((e.text for e in tree.iter() if e.tag.split("}")[-1] == "Code"), None)
    message = next((e.text for e in tree.iter() if e.tag.split("}")[-1] == "Message"), None)
    return code, message


def _s3_operation(call: CapturedCall, bucket: str, key: str) -> str:
    """The S3 operation (as CloudTrail names it) of a REST request."""
    sub = set(_query_pairs(call.query))
    method = call.method
    if not bucket:
        return "ListBuckets"
    for name, suffix in (
        ("retention", "ObjectRetention"),
        ("legal-hold", "ObjectLegalHold"),
        ("object-lock", "ObjectLockConfiguration"),
        ("versioning", "BucketVersioning"),
        ("policy", "BucketPolicy"),
        ("location", "BucketLocation"),
        ("acl", "ObjectAcl" if key else "BucketAcl"),
        ("tagging", "ObjectTagging" if key else "BucketTagging"),
    ):
        if name in sub:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, "Get")
            return verb + suffix
    if method == "POST":
        if "delete" in sub:
            return "DeleteObjects"
        return "CompleteMultipartUpload" if "uploadId" in sub else "CreateMultipartUpload"
    if not key:
        if method == "GET":
            return "ListObjectVersions" if "versions" in sub else "ListObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}[method]
    if method == "PUT":
        if "uploadId" in sub:
            return "UploadPart"
        return "CopyObject" if "x-amz-copy-source" in call.headers else "PutObject"
    return {"GET": "GetObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}[method]


def _s3(call: CapturedCall) -> tuple[str, dict[str, Any]]:
    bucket, _, key = call.path.lstrip("/").partition("/")
    parameters: dict[str, Any] = {"Host": call.headers.get("host", "")}
    if bucket:
        parameters["bucketName"] = unquote(bucket)
    if key:
        parameters["key"] = unquote(key)
    for name, value in _query_pairs(call.query).items():
        if not name.startswith("X-Amz-"):
            parameters[name] = value
    return _s3_operation(call, bucket, key), parameters


def _json_or_query(call: CapturedCall) -> tuple[str, dict[str, Any]]:
    target = call.headers.get("x-amz-target")
    if target:
        operation = target.rsplit(".", 1)[-1]
        try:
            document = json.loads(call.body or b"{}")
        except ValueError:
            document = {}
        return operation, document if isinstance(document, dict) else {}
    pairs = _query_pairs(call.query)
    if "x-www-form-urlencoded" in call.headers.get("content-type", ""):
        pairs.update(_query_pairs(call.body.decode("utf-8", "replace")))
    operation = pairs.get("Action", "")
    parameters = _unflatten({k: v for k, v in pairs.items() if k not in _SKIPPED_QUERY})
    return operation, parameters


def parse(call: CapturedCall) -> ApiCall | None:
    """The signed API call in a captured request, or None when unsigned or not an API call."""
    signature = _signature(call)
    if signature is None:
        return None
    access_key_id, region, service = signature
    if service in _GLOBAL_SERVICES:
        # Whatever region the client signed for, AWS records global services in us-east-1.
        region = "us-east-1"
    try:
        if service == "s3":
            operation, parameters = _s3(call)
        else:
            operation, parameters = _json_or_query(call)
    except (KeyError, UnicodeDecodeError):
        return None
    if not operation:
        return None
    error_code, error_message = _error(call)
    return ApiCall(
        access_key_id=access_key_id,
        service=service,
        region=region,
        event_name=operation,
        # S3's parameters keep CloudTrail's own spelling (bucketName, key, Host).
        request_parameters=(parameters if service == "s3" else _camel_keys(parameters)) or None,
        error_code=error_code,
        error_message=error_message,
    )
