import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.models import ApiKey
from accounts.services import apikey_revoke
from tests.conftest import make_key, make_user
from tests.processes import GunicornProcess


def get_me(url, key) -> int:
    request = urllib.request.Request(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def get_me_concurrently(url, key, times=6) -> list[int]:
    """Requests in parallel, so that one busy worker cannot take them all."""
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(lambda _: get_me(url, key), range(times)))


def pids_by_status(log_text) -> dict[int, set[int]]:
    seen = {}
    for line in log_text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("path") == "/api/v1/me":
                seen.setdefault(record["status"], set()).add(record["pid"])
    return seen


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_stops_at_once_in_every_web_process(tmp_path):
    # Given gunicorn with two worker processes, both of which have accepted the key
    alice = make_user("alice")
    full_key = make_key(alice)
    server = GunicornProcess(tmp_path / "gunicorn.log", workers=2)
    try:
        server.wait_for_log("Booting worker", timeout=30)
        for _ in range(50):
            assert set(get_me_concurrently(server.url, full_key)) == {200}
            if len(pids_by_status(server.log_text()).get(200, ())) == 2:
                break
        assert len(pids_by_status(server.log_text())[200]) == 2, "one worker served every request"

        # When the key is revoked (by another process: this one)
        apikey_revoke(key=ApiKey.objects.get(), actor=alice)

        # Then every request fails from then on, in both workers
        statuses = []
        while len(statuses) < 200 and len(pids_by_status(server.log_text()).get(401, ())) < 2:
            statuses.extend(get_me_concurrently(server.url, full_key))
    finally:
        server.stop()

    assert set(statuses) == {401}
    assert len(pids_by_status(server.log_text())[401]) == 2, "the 401s did not come from both workers"
