"""Turn a served call into a CloudTrail record in AWS's format (event version 1.09).

Who made the call is resolved from the access key the request was signed with, against moto's
IAM users and STS sessions (with what the extension records on sessions: source identity, issue
time, MFA). Secrets never enter a record: no secret access key, no session token, no MFA code.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from awsaccess.sandbox.calls import CapturedCall
from awsaccess.sandbox.protocol import ApiCall

EVENT_VERSION = "1.09"
MAX_PARAMETERS_CHARS = 16 * 1024
MAX_STRING_CHARS = 2 * 1024
_READ_PREFIXES = ("Get", "List", "Describe", "Lookup", "Head")
_READ_NAMES = {"AssumeRole", "GetCallerIdentity", "ReceiveMessage", "GenerateCredentialReport"}
_S3_DATA_NAMES = {
    "GetObject", "PutObject", "DeleteObject", "DeleteObjects", "HeadObject", "CopyObject",
    "ListObjects", "ListObjectVersions", "GetObjectRetention", "PutObjectRetention",
    "GetObjectLegalHold", "PutObjectLegalHold", "GetObjectTagging", "PutObjectTagging",
    "DeleteObjectTagging", "GetObjectAcl", "PutObjectAcl", "CreateMultipartUpload",
    "UploadPart", "CompleteMultipartUpload",
}  # fmt: skip
_SQS_DATA_NAMES = {
    "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
    "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
}  # fmt: skip
_PARTITION = "aws"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _session_identity(account_id: str, access_key_id: str) -> dict[str, Any] | None:
    for session in list(sts_backends[account_id][_PARTITION].assumed_roles):
        if session.access_key_id != access_key_id:
            continue
        role_name = session.role_arn.split("/")[-1]
        principal_id = session.user_id
        issued = getattr(session, "breakglass_issued_at", None)
        context: dict[str, Any] = {
            "sessionIssuer": {
                "type": "Role",
                "principalId": principal_id.split(":")[0],
                "arn": session.role_arn,
                "accountId": account_id,
                "userName": role_name,
            },
            "webIdFederationData": {},
            "attributes": {
                "creationDate": iso(issued) if issued else "",
                "mfaAuthenticated": str(bool(getattr(session, "breakglass_mfa", False))).lower(),
            },
        }
        source_identity = getattr(session, "breakglass_source_identity", None)
        if source_identity is not None:
            context["sourceIdentity"] = source_identity
        return {
            "type": "AssumedRole",
            "principalId": principal_id,
            "arn": session.arn,
            "accountId": account_id,
            "accessKeyId": access_key_id,
            "sessionContext": context,
        }
    return None


def _user_identity(account_id: str, access_key_id: str) -> dict[str, Any] | None:
    backend = iam_backends[account_id][_PARTITION]
    for user in list(backend.users.values()):
        if any(key.access_key_id == access_key_id for key in user.access_keys):
            return {
                "type": "IAMUser",
                "principalId": user.id,
                "arn": user.arn,
                "accountId": account_id,
                "accessKeyId": access_key_id,
                "userName": user.name,
            }
    return None


def identity(access_key_id: str) -> dict[str, Any] | None:
    """The CloudTrail userIdentity of a key, or None for keys the sandbox does not know."""
    for account_id in list(iam_backends.keys()):
        found = _session_identity(account_id, access_key_id) or _user_identity(
            account_id, access_key_id
        )
        if found is not None:
            return found
    return None


def _bounded(parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Long strings are cut, and a record too large overall keeps a note instead (as AWS does
    when request parameters exceed what CloudTrail stores)."""

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            return value[:MAX_STRING_CHARS] + "...(truncated)"
        if isinstance(value, dict):
            return {key: cut(item) for key, item in value.items()}
        if isinstance(value, list):
            return [cut(item) for item in value[:100]]
        return value

    if parameters is None:
        return None
    bounded = cut(parameters)
    size = len(json.dumps(bounded))
    if size > MAX_PARAMETERS_CHARS:
        return {"omitted": True, "reason": "requestParameters too large", "size": size}
    return bounded


def _xml_values(body: bytes, names: set[str]) -> dict[str, str]:
    try:
        tree = ElementTree.fromstring(body)  # noqa: S314 (moto's own response)
    except ElementTree.ParseError:
        return {}
    return {
        element.tag.split("}")[-1]: element.text or ""
        for element in tree.iter()
        if element.tag.split("}")[-1] in names
    }


def _response_elements(call: CapturedCall, api: ApiCall) -> dict[str, Any] | None:
    """Only what AWS shows and nothing secret: the new key's id, never its secret or token."""
    if api.error_code is not None:
        return None
    if api.service == "sts" and api.event_name == "AssumeRole":
        values = _xml_values(
            call.response_body,
            {"AccessKeyId", "Expiration", "AssumedRoleId", "Arn", "SourceIdentity"},
        )
        elements: dict[str, Any] = {
            "credentials": {
                "accessKeyId": values.get("AccessKeyId"),
                "expiration": values.get("Expiration"),
            },
            "assumedRoleUser": {
                "assumedRoleId": values.get("AssumedRoleId"),
                "arn": values.get("Arn"),
            },
        }
        if "SourceIdentity" in values:
            elements["sourceIdentity"] = values["SourceIdentity"]
        return elements
    if api.service == "iam" and api.event_name == "CreateAccessKey":
        values = _xml_values(call.response_body, {"AccessKeyId", "UserName", "Status"})
        return {
            "accessKey": {
                "accessKeyId": values.get("AccessKeyId"),
                "userName": values.get("UserName"),
                "status": values.get("Status"),
            }
        }
    return None


def is_read_only(event_name: str) -> bool:
    return event_name.startswith(_READ_PREFIXES) or event_name in _READ_NAMES


def is_management(service: str, event_name: str) -> bool:
    if service == "s3":
        return event_name not in _S3_DATA_NAMES
    if service == "sqs":
        return event_name not in _SQS_DATA_NAMES
    return True


def _resources(api: ApiCall, account_id: str) -> list[dict[str, str]]:
    parameters = api.request_parameters or {}
    if api.service == "sts" and "roleArn" in parameters:
        return [{"accountId": account_id, "type": "AWS::IAM::Role", "ARN": parameters["roleArn"]}]
    if api.service == "s3" and "bucketName" in parameters:
        bucket = f"arn:aws:s3:::{parameters['bucketName']}"
        found = [{"accountId": account_id, "type": "AWS::S3::Bucket", "ARN": bucket}]
        if "key" in parameters:
            found.append({"type": "AWS::S3::Object", "ARN": f"{bucket}/{parameters['key']}"})
        return found
    return []


def record(call: CapturedCall, api: ApiCall, user_identity: dict[str, Any]) -> dict[str, Any]:
    account_id = user_identity["accountId"]
    management = is_management(api.service, api.event_name)
    entry: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity,
        "eventTime": iso(call.time),
        "eventSource": f"{api.service}.amazonaws.com",
        "eventName": api.event_name,
        "awsRegion": api.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.headers.get("user-agent", ""),
    }
    if api.error_code is not None:
        entry["errorCode"] = api.error_code
        entry["errorMessage"] = api.error_message or ""
    entry.update(
        {
            "requestParameters": _bounded(api.request_parameters),
            "responseElements": _response_elements(call, api),
            "requestID": call.response_headers.get("x-amzn-requestid")
            or call.response_headers.get("x-amz-request-id")
            or str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": is_read_only(api.event_name),
        }
    )
    resources = _resources(api, account_id)
    if resources:
        entry["resources"] = resources
    entry.update(
        {
            "eventType": "AwsApiCall",
            "managementEvent": management,
            "recipientAccountId": account_id,
            "eventCategory": "Management" if management else "Data",
        }
    )
    return entry
