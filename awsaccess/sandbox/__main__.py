"""python -m awsaccess.sandbox serve|bootstrap|run"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_PORT = 5055


def wait_until_up(endpoint_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/_sandbox/health", timeout=1) as response:  # noqa: S310
                response.read()
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"sandbox at {endpoint_url} did not answer in {timeout:.0f}s"
                ) from None
            time.sleep(0.1)


def _bootstrap(args: argparse.Namespace, endpoint_url: str) -> None:
    from awsaccess.sandbox.bootstrap import bootstrap

    state, report = bootstrap(
        endpoint_url,
        Path(args.state_dir),
        role_name=args.role_name,
        principal_name=args.principal_name,
        region=args.region,
    )
    for finding in report.findings:
        print(f"  {finding.status:8} {finding.resource} {finding.detail}".rstrip())
    print(
        json.dumps(
            {
                "endpoint_url": endpoint_url,
                "account_id": state.account_id,
                "region": state.region,
                "role_arn": state.role_arn,
                "principal_arn": state.principal_arn,
                "state_dir": str(state.state_dir),
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m awsaccess.sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run moto with the sandbox extension")
    bootstrap = commands.add_parser("bootstrap", help="create identities, then enforce IAM")
    run = commands.add_parser("run", help="serve and bootstrap, in the foreground")
    for command in (serve, run):
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=DEFAULT_PORT)
    bootstrap.add_argument("--endpoint", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    for command in (bootstrap, run):
        command.add_argument("--state-dir", default="var/sandbox")
        command.add_argument("--role-name", default="breakglass-admin")
        command.add_argument("--principal-name", default="breakglass-principal")
        command.add_argument("--region", default="eu-west-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.command == "serve":
        from awsaccess.sandbox.server import serve as serve_forever

        serve_forever(args.host, args.port)
    elif args.command == "bootstrap":
        wait_until_up(args.endpoint, timeout=30)
        _bootstrap(args, args.endpoint)
    else:
        endpoint_url = f"http://{args.host}:{args.port}"
        server = subprocess.Popen(  # noqa: S603 (our own module, fixed argv)
            [
                sys.executable,
                "-m",
                "awsaccess.sandbox",
                "serve",
                "--host",
                args.host,
                "--port",
                str(args.port),
            ]
        )
        try:
            wait_until_up(endpoint_url, timeout=30)
            _bootstrap(args, endpoint_url)
            server.wait()
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
