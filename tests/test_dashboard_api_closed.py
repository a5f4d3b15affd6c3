"""The dashboard's boundary, probed from outside against the real server.

The Gradio event API is closed: every event refused to gradio_client, /gradio_api/call|run and a raw queue join.
Each refusal is paired with a positive control (the same request as the page makes it succeeds), so a refusal
cannot come from a malformed request. The real page still works in a real Chromium, a page on another origin
cannot upload, Validate opens datasets only under the configured roots, uploads live in a private folder under
the data folder that is emptied at start, and error messages do not show server paths.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from evaluation.store import Store
from tests.browser_util import App, chromium, need_browser, new_page, wait_for_text

pytestmark = [pytest.mark.browser]
LOCAL_NETWORK_CHECKS_OFF = (
    "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"
)


@pytest.fixture(scope="module")
def extra_root(tmp_path_factory, speech_wav) -> Path:
    """A folder named with --dataset-root, holding a one-row dataset."""
    root = tmp_path_factory.mktemp("datasets")
    (root / "set").mkdir()
    shutil.copy(speech_wav, root / "set" / "a.wav")
    (root / "set" / "metadata.csv").write_text("file_name,text,accent\na.wav,hello,us\n")
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory, extra_root):
    need_browser()
    root = tmp_path_factory.mktemp("api-closed")
    stale = root / "data" / "gradio-tmp" / "left-by-a-crash" / "old.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    app = App(root / "data", root, ["--no-preload", "--dataset-root", str(extra_root)]).start()
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def case_id(app, speech_wav):
    return Store(app.data_dir).add_case("test_case", str(speech_wav), transcript="t", reference="r").id


@pytest.fixture(scope="module")
def events(app) -> dict[str, int]:
    config = httpx.get(app.url + "/config", timeout=30).json()
    return {dep["api_name"]: dep["id"] for dep in config["dependencies"]}


class PageClient:
    """Speaks the page's own protocol (page cookie, Origin, queue join + event stream), from Python."""

    def __init__(self, url: str, origin: str | None, cookie: bool = True) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        if cookie:
            self.http.get("/review").raise_for_status()  # the page sets its cookie, as for a browser
        self.headers = {"Origin": origin} if origin else {}
        self.session = uuid.uuid4().hex

    def join(self, fn_index: int, data: list, event_data: dict | None = None) -> httpx.Response:
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": event_data}
        return self.http.post("/gradio_api/queue/join", json=body, headers=self.headers)

    def call(self, fn_index: int, data: list, event_data: dict | None = None) -> dict:
        """Join and wait for the event's completion message."""
        assert self.join(fn_index, data, event_data).status_code == 200
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return message
        raise AssertionError("the event stream ended without a result")


def test_info_lists_nothing_callable(app, events):
    info = httpx.get(app.url + "/gradio_api/info", timeout=30).json()
    assert info == {"named_endpoints": {}, "unnamed_endpoints": {}}
    assert len(events) > 30 and "review_delete" in events and "review_list" in events  # they do exist


def test_every_event_is_refused_to_every_client(app, events, case_id):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    http = httpx.Client(base_url=app.url, timeout=30)
    foreign = PageClient(app.url, origin="http://evil.test")
    no_cookie = PageClient(app.url, origin=app.url, cookie=False)
    no_origin = PageClient(app.url, origin=None)
    for name, index in events.items():
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=f"/{name}")
        with pytest.raises(ValueError, match="Invalid function index"):
            client.submit(fn_index=index)
        for route in (f"/gradio_api/call/{name}", f"/gradio_api/call/v2/{name}", f"/gradio_api/run/{name}"):
            assert http.post(route, json={"data": []}).status_code == 404, route
        for raw in (foreign, no_cookie, no_origin):
            assert raw.join(index, []).status_code == 403, (name, raw.headers)
    page = PageClient(app.url, origin=app.url)  # the control: the page's own request is served
    listed = page.call(events["review_list"], ["all", "all", "all", "all", "all"])
    assert listed["success"] and case_id in json.dumps(listed["output"])


def test_delete_needs_the_servers_confirmation_step(app, events, case_id):
    store = Store(app.data_dir)
    page = PageClient(app.url, origin=app.url)
    row = {"index": [0, 0], "value": case_id, "row_value": [case_id], "col_value": [case_id]}
    assert page.call(events["review_select"], [], row)["success"]
    skipped = page.call(events["review_delete"], [None, None, "all", "all", "all", "all", "all"])
    assert not skipped["success"] and "confirm" in json.dumps(skipped["output"])
    assert store.get_case(case_id).id == case_id  # still there
    assert page.call(events["review_ask_delete"], [None])["success"]
    done = page.call(events["review_delete"], [None, None, "all", "all", "all", "all", "all"])
    assert done["success"] and case_id not in [c.id for c in store.list_cases()]
    again = page.call(events["review_delete"], [None, None, "all", "all", "all", "all", "all"])
    assert not again["success"]  # the confirmation was used up


def test_the_page_works_and_other_origins_cannot_upload(app, events):
    # Chromium's own local-network checks would stop the request before it reaches the server; other browsers
    # (and older Chromium) send it, so they are turned off to test the server's refusal.
    with chromium([LOCAL_NETWORK_CHECKS_OFF]) as browser:
        page = new_page(browser)
        page.goto(app.url + "/review")
        page.locator("#review-refresh").click()
        wait_for_text(page, "#review-table", "transcript")  # the column header arrives through the queue
        own = page.evaluate(_UPLOAD_JS, app.url + "/gradio_api/upload")
        assert own == 200  # the page's own origin uploads

        page.route(
            "http://evil.test/**", lambda route: route.fulfill(body="<html>evil</html>", content_type="text/html")
        )
        page.goto("http://evil.test/")
        with page.expect_response(lambda r: r.url.startswith(app.url + "/gradio_api/upload")) as response:
            page.evaluate(
                _UPLOAD_JS.replace("fetch(url, {", "fetch(url, {mode: 'no-cors', "), app.url + "/gradio_api/upload"
            )
        assert response.value.status == 403
    uploaded = [p for p in app.log_dir.rglob("*") if p.name == "asrqa-upload-probe.wav"]
    assert len(uploaded) == 1  # the same-origin one only
    assert uploaded[0].is_relative_to(app.data_dir / "gradio-tmp")  # the private folder, not /tmp/gradio


def test_the_private_upload_folder_was_emptied_at_start(app):
    assert not (app.data_dir / "gradio-tmp" / "left-by-a-crash").exists()
    assert (app.data_dir / "gradio-tmp").stat().st_mode & 0o077 == 0


def _error(message: dict) -> str:
    return json.dumps(message.get("output", {}).get("error"))


def test_validate_reads_datasets_only_under_the_roots(app, events, extra_root, tmp_path):
    page = PageClient(app.url, origin=app.url)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "metadata.csv").write_text("file_name,text\nx.wav,secret text\n")
    (extra_root / "link-out").symlink_to(outside)  # a link inside a root that points out of it
    refusals = set()
    for path in ("/etc", "/etc/passwd", "/no/such/folder", str(outside), str(extra_root / "link-out"), "../../etc"):
        answer = page.call(events["validate_columns"], ["folder", path, ""])
        assert not answer["success"] and "refused" in _error(answer), path
        refusals.add(_error(answer).replace(path, "PATH"))
    assert len(refusals) == 1  # the same line whether the path exists, is a file, a folder or nothing
    noise = page.call(events["validate_conditions"], [["white"], "10", "", "/no/such/noise", ["none"]])
    assert "refused" in json.dumps(noise["output"]) and "does not exist" not in json.dumps(noise["output"])
    allowed = page.call(events["validate_columns"], ["folder", str(extra_root / "set"), ""])
    assert allowed["success"] and "accent" in json.dumps(allowed["output"])  # --dataset-root opens


def test_errors_do_not_show_server_paths(app, events):
    page = PageClient(app.url, origin=app.url)
    form = {"files": ("broken.wav", b"RIFF not really audio", "audio/wav")}
    uploaded = page.http.post("/gradio_api/upload", files=form, headers=page.headers).json()[0]
    file_data = {"path": uploaded, "orig_name": "broken.wav", "meta": {"_type": "gradio.FileData"}}
    # the page sends the tab's state (which file it shows) after the three fields; it holds it, so null
    answer = page.call(events["transcribe"], [file_data, "whisper-tiny.en", "faster-whisper", None])
    assert not answer["success"] and "broken.wav" in _error(answer)
    assert str(app.data_dir) not in _error(answer) and "gradio-tmp" not in _error(answer)
    missing = page.call(events["validate_open_run"], [None, "no-such-run"])  # said "... in /path/asrqa.sqlite"
    assert not missing["success"] and "no-such-run" in _error(missing) and str(app.data_dir) not in _error(missing)


_UPLOAD_JS = """async (url) => {
    const form = new FormData();
    form.append("files", new Blob([new Uint8Array(2048)], {type: "audio/wav"}), "asrqa-upload-probe.wav");
    const response = await fetch(url, {method: "POST", body: form});
    return response.status;
}"""


def test_a_rebound_dns_name_is_refused(app):
    """A site that points its own name at 127.0.0.1 would be "same origin" with the dashboard in a browser."""
    for host, status in (
        (f"evil.test:{app.port}", 403),
        (f"localhost:{app.port}", 200),
        (f"127.0.0.1:{app.port}", 200),
    ):
        answer = httpx.get(app.url + "/", headers={"Host": host}, timeout=30)
        assert answer.status_code == status, host
    rebound = PageClient(app.url, origin=f"http://evil.test:{app.port}", cookie=False)
    rebound.http.headers["Host"] = f"evil.test:{app.port}"
    assert rebound.http.get("/review").status_code == 403  # no page, so no cookie, and no event
