"""Prove issued credentials work (or are refused) with a harmless read action.

Never GetCallerIdentity: AWS (and the sandbox) allow it to any valid key, even a denied one.
"""

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from awsaccess.errors import translate
from awsaccess.types import IssuedCredentials

REFUSAL_CODES = frozenset({"AccessDenied", "ExpiredToken", "InvalidClientTokenId"})


def credentials_work(credentials: IssuedCredentials) -> bool:
    """True when s3:ListAllMyBuckets succeeds, False when AWS refuses these credentials."""
    s3 = boto3.client(
        "s3",
        endpoint_url=credentials.endpoint_url,
        region_name=credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(retries={"total_max_attempts": 2}, connect_timeout=3, read_timeout=10),
    )
    try:
        s3.list_buckets()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in REFUSAL_CODES:
            return False
        raise translate("s3:ListAllMyBuckets", error) from None
    except BotoCoreError as error:
        raise translate("s3:ListAllMyBuckets", error) from None
    return True
