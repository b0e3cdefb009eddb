import json
import logging

from portal.observability import JsonFormatter, RequestIdFilter


def test_every_response_carries_a_request_id(client, db):
    response = client.get("/metrics")

    assert len(response["X-Request-ID"]) == 32


def test_a_proxy_supplied_request_id_is_kept_and_a_malformed_one_replaced(client, db):
    kept = client.get("/metrics", headers={"X-Request-ID": "edge-7f3a.1"})
    replaced = client.get("/metrics", headers={"X-Request-ID": "bad id\nInjected: 1"})

    assert kept["X-Request-ID"] == "edge-7f3a.1"
    assert replaced["X-Request-ID"] != "bad id\nInjected: 1"


def test_log_lines_are_json_with_the_request_id():
    record = logging.LogRecord(
        "approvals", logging.WARNING, __file__, 1, "revoked %s", ("r-1",), None
    )
    RequestIdFilter().filter(record)

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "revoked r-1"
    assert line["level"] == "WARNING"
    assert line["request_id"] == "-"
