"""Security of the served dashboard: login required with --auth, nothing outside the served folders, upload cap."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.browser_util import chromium, new_page, running_app

pytestmark = [pytest.mark.browser]

USER, PASSWORD = "tester", "correct horse"
FILE_USER, FILE_PASSWORD = "second", "pass:with:colons"
UPLOAD_CAP_MB = 1


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    auth_file = tmp_path_factory.mktemp("auth") / "users.txt"
    auth_file.write_text(f"# testers\n{FILE_USER}:{FILE_PASSWORD}\n")
    args = ["--auth", f"{USER}:{PASSWORD}", "--auth", str(auth_file), "--max-upload-mb", str(UPLOAD_CAP_MB)]
    with running_app(tmp_path_factory, "security", args) as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _login(page, app, user: str, password: str) -> None:
    page.goto(app.url + "/")
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_pages_need_a_login(app, browser):
    page = new_page(browser)
    for path in ("/", "/transcribe", "/validate", "/review"):
        page.goto(app.url + path)
        page.get_by_role("button", name="Login").wait_for()
        assert page.locator("#live-mic, #transcribe-button, #validate-run, #review-table").count() == 0
    assert _status(app.url + "/config") == 401
    assert _status(app.url + "/openapi.json") == 404  # FastAPI's schema listed every route to anyone
    assert _status(f"{app.url}/gradio_api/file=/etc/passwd") in (401, 403)


def test_live_redirects_to_the_main_page_which_still_needs_the_login(app):
    """/live answered {"detail":"Not Found"} (Live is the page at /, the others are at their names): it redirects
    to /, the query kept, and the page there is the login until the login cookie comes with it."""
    guest = urllib.request.build_opener()
    with guest.open(app.url + "/live", timeout=30) as response:
        assert response.url == app.url + "/"
        page = response.read().decode()
    assert '"auth_required":true' in page and '"live-mic"' not in page
    member = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.parse.urlencode({"username": USER, "password": PASSWORD}).encode()
    member.open(app.url + "/login", data=login, timeout=30).close()
    with member.open(app.url + "/live?__theme=dark", timeout=30) as response:
        assert response.url == app.url + "/?__theme=dark"
        assert '"elem_id":"live-mic"' in response.read().decode()


def test_wrong_password_is_refused(app, browser):
    page = new_page(browser)
    _login(page, app, USER, "wrong")
    page.get_by_text("Incorrect Credentials").wait_for()
    assert page.locator("#live-mic").count() == 0


def test_user_names_are_compared_exactly(app, browser):
    for name in (f"{USER} ", f" {USER}", USER.upper()):  # Gradio strips the name: "tester " used to log in
        page = new_page(browser)
        _login(page, app, name, PASSWORD)
        page.get_by_text("Incorrect Credentials").wait_for()
        assert page.locator("#live-mic").count() == 0, repr(name)
        page.context.close()


def test_login_opens_every_page_but_never_other_files(app, browser):
    page = new_page(browser)
    _login(page, app, FILE_USER, FILE_PASSWORD)  # a user from the --auth file; the password holds colons
    page.locator("#live-mic").wait_for()
    for path, element in (
        ("/transcribe", "#transcribe-button"),
        ("/validate", "#validate-run"),
        ("/review", "#review-table"),
    ):
        page.goto(app.url + path)
        page.locator(element).wait_for()
    for path in ("/etc/passwd", str(app.data_dir / "asrqa.sqlite"), str(app.data_dir.parent / "app-1.log")):
        response = page.request.get(f"{app.url}/gradio_api/file={path}")
        assert response.status in (403, 404), path


def test_uploads_over_the_cap_and_direct_api_calls_are_refused(app, browser):
    page = new_page(browser)
    _login(page, app, USER, PASSWORD)
    page.locator("#live-mic").wait_for()
    big = b"\0" * (UPLOAD_CAP_MB * 1024 * 1024 + 1024)
    own = {"Origin": app.url}  # what the page sends; without it uploads are refused (test_dashboard_api_closed)
    response = page.request.post(
        f"{app.url}/gradio_api/upload",
        multipart={"files": {"name": "big.wav", "mimeType": "audio/wav", "buffer": big}},
        headers=own,
    )
    assert response.status == 413
    small = page.request.post(
        f"{app.url}/gradio_api/upload",
        multipart={"files": {"name": "small.wav", "mimeType": "audio/wav", "buffer": b"\0" * 1024}},
        headers=own,
    )
    assert small.status == 200
    direct = page.request.post(
        f"{app.url}/gradio_api/run/transcribe", data={"data": [None, "whisper-tiny.en", "faster-whisper"]}
    )
    assert direct.status == 404  # queue(api_open=False): events only through the queue the pages use
