"""Grants never wait behind other work: activations and revocations have a queue of their own
that a real worker serves first, with Redis and with the embedded filesystem broker `make run`
uses. A backlog of slow chat notifications is queued first; the grant must not wait for it."""

import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.db import transaction

from approvals.models import NotificationDelivery, Status
from approvals.services.notifications import SECURITY_CHAT, Notice, notify
from approvals.services.queue import Job
from portal.celery import app
from tests.broker import drain_task_messages
from tests.processes import ManagedProcess, celery_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BACKLOG = 30
# Each notice holds a worker slot this long: the backlog takes 15 s to drain on two slots, and a
# grant queued behind it would wait all of that.
POST_SECONDS = 1.0


class ChatReceiver:
    """A chat webhook on loopback that answers each notice after `seconds`, or with None only
    once the test releases it (at most HELD_SECONDS)."""

    def __init__(self, seconds: float | None) -> None:
        self.release = threading.Event()
        self.arrived = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrived += 1
                if seconds is None:
                    receiver.release.wait(timeout=HELD_SECONDS)
                else:
                    time.sleep(seconds)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


HELD_SECONDS = 60


@pytest.fixture
def slow_receiver():
    receiver = ChatReceiver(POST_SECONDS)
    yield receiver
    receiver.stop()


@pytest.fixture(params=["redis", "filesystem"])
def broker(request, live, settings):
    """The worker and this process on Redis (as in production) or on the embedded broker."""
    if request.param == "redis":
        yield request.param
        return
    folders = {sub: settings.VAR_DIR / "celery" / sub for sub in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    saved = {
        key: app.conf[key] for key in ("broker_url", "broker_transport", "broker_transport_options")
    }
    app.conf.update(
        broker_url="filesystem://",
        broker_transport="portal.broker:PriorityFilesystemTransport",
        broker_transport_options={
            "data_folder_in": str(folders["queue"]),
            "data_folder_out": str(folders["queue"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
        },
    )
    app._after_fork()  # drop the pooled Redis connections: the next message goes to the folder
    # Earlier tests on the embedded broker share the folder: what they left must not reach
    # this test's workers (the live fixture drained Redis only).
    drain_task_messages(max_messages=1000, wait=0.1)
    # The worker child finds no CELERY_BROKER_URL and uses the same folder (tests/settings.py);
    # its cache (the watch and backstop locks) stays on Redis.
    live.env.pop("CELERY_BROKER_URL", None)
    live.env["BREAKGLASS_CACHE_URL"] = settings.CELERY_BROKER_URL
    try:
        yield request.param
    finally:
        app.conf.update(saved)
        app._after_fork()


def backlog() -> list[int]:
    """BACKLOG notices to the (slow) security chat, queued once this transaction commits."""
    with transaction.atomic():
        rows = [
            notify(
                Notice(
                    event="backlog.test", subject=f"notice {n}", body="-", chats=(SECURITY_CHAT,)
                )
            )[0]
            for n in range(BACKLOG)
        ]
    return [row.pk for row in rows]


def sent_before(ids: list[int], moment: datetime) -> int:
    return NotificationDelivery.objects.filter(pk__in=ids, delivered_at__lt=moment).count()


def sent(ids: list[int]) -> int:
    return NotificationDelivery.objects.filter(pk__in=ids, status="sent").count()


def waiting(queue: str) -> int:
    """Messages of `queue` still in the broker (not yet taken by a worker)."""
    with app.connection_for_read() as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


def test_activation_and_revocation_are_served_before_a_backlog_of_other_work(
    live, broker, slow_receiver
):
    live.env["BREAKGLASS_SECURITY_CHAT_WEBHOOK_URL"] = slow_receiver.url
    live.start_worker()
    queued = backlog()

    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    # Served as soon as a slot was free, not after the backlog (most of it is still waiting).
    early = sent_before(queued, access_request.activated_at)
    assert early <= BACKLOG // 2, f"{early} of {BACKLOG} notices went before the activation"

    more = backlog()
    live.revoke(access_request)
    early = sent_before(more, access_request.revoked_at)
    assert early <= BACKLOG // 2, f"{early} of {BACKLOG} notices went before the revocation"

    # The backlog is served too, only later: nothing was dropped.
    try:
        wait_until(lambda: sent(queued + more) == 2 * BACKLOG, timeout=90, what="backlog")
    except TimeoutError:
        rows = NotificationDelivery.objects.filter(pk__in=queued + more).exclude(status="sent")
        raise AssertionError([(r.pk, r.status, r.attempts, r.last_error) for r in rows]) from None


def test_a_worker_busy_with_a_long_poll_takes_no_work_it_cannot_start(
    live, broker, slow_receiver, settings
):
    """The watch's long poll is acknowledged as it starts, so the broker no longer counts it:
    a worker would fetch the next message, a notice, and keep it for its busy process, and a
    grant arriving next would wait behind it. It fetches only when a process is free, and then
    the grant, which the grants queue puts first."""
    live.env["BREAKGLASS_SECURITY_CHAT_WEBHOOK_URL"] = slow_receiver.url
    live.env["BREAKGLASS_WATCH_WAIT_SECONDS"] = "8"
    live.env["BREAKGLASS_AWS_READ_TIMEOUT_SECONDS"] = "15"  # longer than the poll's wait
    command = celery_worker(live.log_dir, live.env).command
    command[command.index("--concurrency") + 1] = "1"
    worker = ManagedProcess("worker", command, live.env, live.log_dir / "worker.log")
    live.processes.append(worker.start(ready_text="ready.", timeout=40))
    cache.delete("breakglass:watch-poll")  # a poll of an earlier test would make this one skip
    app.send_task(Job.WATCH_POLL.value)  # holds the one process for 8 s
    wait_until(lambda: waiting(settings.CELERY_TASK_DEFAULT_QUEUE) == 0, timeout=30, what="poll")
    queued = backlog()

    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    assert sent_before(queued, access_request.activated_at) == 0


@pytest.fixture
def held_receiver():
    receiver = ChatReceiver(None)
    yield receiver
    receiver.stop()


def test_the_grants_worker_serves_grants_while_every_process_of_the_other_worker_is_busy(
    live, broker, held_receiver, settings
):
    """`make run` and compose run a worker with `--grants-only` beside the main one: when the
    main worker's every process is held (here one process, stuck in a notice whose chat does not
    answer), an activation and a revocation still go through at once. The grants worker takes
    nothing but grants: a notice queued meanwhile waits for the main worker."""
    live.env["BREAKGLASS_SECURITY_CHAT_WEBHOOK_URL"] = held_receiver.url
    live.env["BREAKGLASS_NOTIFY_TIMEOUT_SECONDS"] = str(HELD_SECONDS + 30)  # held, not timed out
    command = celery_worker(live.log_dir, live.env).command
    command[command.index("--concurrency") + 1] = "1"
    main = ManagedProcess("worker", command, live.env, live.log_dir / "worker.log")
    live.processes.append(main.start(ready_text="ready.", timeout=40))
    held = backlog()[:1]
    wait_until(lambda: held_receiver.arrived == 1, timeout=30, what="the main worker held")
    grants = celery_worker(live.log_dir, live.env, name="grants", grants_only=True)
    live.processes.append(grants.start(ready_text="ready.", timeout=40))
    waiting_notice = backlog()

    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
    live.revoke(access_request)

    # All along the main worker's only process was in the first notice, still unanswered.
    assert held_receiver.arrived == 1 and sent(held) == 0
    assert sent(waiting_notice) == 0
    assert waiting(settings.CELERY_TASK_DEFAULT_QUEUE) >= 1  # the grants worker left them
    for task in ("approvals.activate_request", "approvals.revoke_request"):
        assert f"Task {task}[" in grants.log_text(), task
        assert f"Task {task}[" not in main.log_text(), task

    held_receiver.release.set()
    wait_until(lambda: sent(held + waiting_notice) == 1 + BACKLOG, timeout=90, what="notices")


def test_the_worker_builds_every_profiles_aws_clients_before_its_processes_start(live):
    """Building a boto3 client takes 50-500 ms: the worker builds the clients of every profile
    before it forks, and its processes activate with them."""
    worker = live.start_worker()
    assert "AWS clients prepared for 2 access profiles" in worker.log_text()

    access_request = live.open_approved()
    live.wait_for_status(access_request, Status.ACTIVE)
