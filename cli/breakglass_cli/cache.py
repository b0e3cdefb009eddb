"""Revealed credentials kept for this user only, so the AWS CLI can ask again without a code.

One file per portal profile and request, mode 0600 in a 0700 directory, served until the
credentials' own expiration; dropped as soon as any command learns the request ended.
"""

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

from breakglass_cli.config import cache_root
from breakglass_cli.errors import CliError, Exit
from breakglass_cli.files import private_dir, private_write


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CredentialCache:
    def __init__(self, *, profile: str, request_id: str) -> None:
        self.request_id = request_id
        self.path: Path = cache_root() / "credentials" / profile / f"{request_id}.json"

    def load(self) -> dict | None:
        """The cached credentials, None when there are none; expired ones are deleted."""
        try:
            credentials = json.loads(self.path.read_text(encoding="utf-8"))
            expiration = parse_time(credentials["expiration"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.drop()  # unreadable: ask the portal again rather than fail forever
            return None
        if expiration <= datetime.now(UTC):
            self.drop()
            raise CliError(
                "expired",
                f"the credentials of request {self.request_id} expired at "
                f"{expiration:%Y-%m-%d %H:%M:%S} UTC; request access again",
                Exit.TIMED_OUT,
            )
        return credentials

    def store(self, credentials: dict) -> None:
        private_dir(self.path.parent.parent.parent)
        private_dir(self.path.parent.parent)
        private_write(self.path, json.dumps(credentials))

    def drop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
