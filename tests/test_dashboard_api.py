"""The scripting API on the real server: token from DATA/api-token (0600), the --auth login as well, the Record
flow through it with real speech (check, accept, a stale index refused, skip, summary)."""

from __future__ import annotations

import os
import stat

import pytest

from dashboard.api import TOKEN_FILE, ensure_token, mb
from tests.browser_util import running_app

pytestmark = [pytest.mark.slow]

USER, PASSWORD = "qa", "s3cret-pass"
CAP_MB = 2  # --max-upload-mb of the server under test: small, so a body over it is quick to send


def test_token_is_made_once_with_mode_0600_and_a_loose_mode_is_fixed(tmp_path):
    token = ensure_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= 32
    assert ensure_token(tmp_path) == token  # the same token on every later start
    os.chmod(path, 0o644)
    assert ensure_token(tmp_path) == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 32 characters; delete the file"):
        ensure_token(tmp_path)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "api", ["--auth", f"{USER}:{PASSWORD}", "--max-upload-mb", str(CAP_MB)]) as app:
        yield app


@pytest.fixture(scope="module")
def client(app):
    """An httpx client logged in (the cookie of POST /login) and carrying the bearer token."""
    import httpx

    token = (app.data_dir / TOKEN_FILE).read_text().strip()
    with httpx.Client(base_url=app.url, timeout=120) as c:
        assert c.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


@pytest.fixture(scope="module")
def speech(real_set) -> bytes:
    """'Please check the number and dial again.', as the set keeps it (8 kHz WAV: the API takes any format)."""
    return (real_set / "audio" / "en" / "check-number-dial-again.wav").read_bytes()


def test_token_and_login_are_both_needed(app, client):
    import httpx

    assert stat.S_IMODE((app.data_dir / TOKEN_FILE).stat().st_mode) == 0o600
    token_only = httpx.get(f"{app.url}/api/sessions", headers=dict(client.headers), timeout=30)
    assert token_only.status_code == 401 and "POST /login" in token_only.json()["detail"]
    login_only = httpx.get(f"{app.url}/api/sessions", cookies=client.cookies, timeout=30)
    assert login_only.status_code == 401 and "Bearer" in login_only.json()["detail"]
    wrong = httpx.get(f"{app.url}/api/sessions", cookies=client.cookies, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert client.get("/api/sessions").status_code == 200


def test_a_session_through_the_api(client, speech):
    script = client.post(
        "/api/scripts",
        json={
            "name": "ivr",
            "prompts": [
                {"id": "pin", "text": "Please enter the conference pin number.", "type": "commands"},
                {"id": "again", "text": "Please check the number and dial again.", "type": "commands"},
                {"id": "thanks", "text": "Thank you.", "type": "polite"},
            ],
        },
    )
    assert script.status_code == 201, script.text
    session = client.post(
        "/api/sessions", json={"script_id": script.json()["id"], "speaker": "api-1", "accent": "US", "device": "phone"}
    )
    assert session.status_code == 201, session.text
    sid = session.json()["id"]
    assert session.json()["prompt"]["id"] == "pin" and session.json()["total"] == 3

    checked = client.post(f"/api/sessions/{sid}/takes", params={"action": "check"}, content=speech)
    assert checked.status_code == 200, checked.text
    assert checked.json()["wer"] > 0.5 and "case_id" not in checked.json()  # the wrong prompt read: nothing saved
    assert client.get(f"/api/sessions/{sid}").json()["position"] == 0

    client.post(f"/api/sessions/{sid}/skip", params={"index": 0}).raise_for_status()
    accepted = client.post(f"/api/sessions/{sid}/takes", params={"action": "accept", "index": 1}, content=speech)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    # tiny.en may mishear the first word of a clip with no silence before it (the set's clips have none)
    assert body["wer"] <= 0.3 and body["case_id"] and body["session"]["position"] == 2, body
    assert {c["name"] for c in body["checks"]["checks"]} >= {"clipping", "level", "snr", "start", "end", "length"}

    stale = client.post(f"/api/sessions/{sid}/takes", params={"action": "accept", "index": 1}, content=b"RIFF")
    assert stale.status_code == 409 and "not the session's current prompt" in stale.json()["detail"]
    bad_audio = client.post(f"/api/sessions/{sid}/takes", content=b"not audio at all")
    assert bad_audio.status_code == 400

    summary = {r["prompt_type"]: r for r in client.get(f"/api/sessions/{sid}/summary").json()["prompt_types"]}
    assert (summary["commands"]["accepted"], summary["commands"]["skipped"]) == (1, 1)
    takes = client.get(f"/api/sessions/{sid}/takes").json()["takes"]
    assert [t["action"] for t in takes] == ["skipped", "accepted"]
    assert client.get("/api/sessions/nope").status_code == 404
    assert client.post("/api/sessions", json={"builtin": "digits", "speaker": "x"}).status_code == 400  # no accent


def test_a_bad_query_value_is_one_line_and_moves_nothing(client, speech):
    """index=abc or open=maybe were FastAPI's 422 list of dicts; the README promises {"detail": "one line"}, 400."""
    session = client.post("/api/sessions", json={"builtin": "ivr-commands", "speaker": "api-2", "accent": "US"})
    sid = session.json()["id"]
    for path, params, body in (
        (f"/api/sessions/{sid}/takes", {"action": "accept", "index": "abc"}, speech),
        (f"/api/sessions/{sid}/skip", {"index": "1.5"}, b""),
    ):
        bad = client.post(path, params=params, content=body)
        assert bad.status_code == 400, bad.text
        assert isinstance(bad.json()["detail"], str) and "index must be" in bad.json()["detail"], bad.text
    assert client.get(f"/api/sessions/{sid}").json()["position"] == 0
    assert client.get(f"/api/sessions/{sid}/takes").json()["takes"] == []

    bad_flag = client.get("/api/sessions", params={"open": "maybe"})
    assert bad_flag.status_code == 400 and "open must be true or false, not 'maybe'" == bad_flag.json()["detail"]
    open_ids = {s["id"] for s in client.get("/api/sessions", params={"open": "true"}).json()["sessions"]}
    assert sid in open_ids


def test_a_take_over_the_upload_cap_is_413_in_mb(client):
    """The cap is refused from the declared length, before the body is read; the message gave raw bytes. (httpx
    will not declare more than it sends, so the request goes through http.client.)"""
    import http.client
    import json
    from urllib.parse import urlsplit

    session = {"builtin": "ivr-commands", "speaker": "api-3", "accent": "US"}
    sid = client.post("/api/sessions", json=session).json()["id"]
    url = urlsplit(str(client.base_url))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.putrequest("POST", f"/api/sessions/{sid}/takes?action=accept")
    conn.putheader("Authorization", client.headers["Authorization"])
    conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in client.cookies.items()))
    conn.putheader("Content-Length", str(900 * 2**20))
    conn.endheaders(b"\0" * 1024)
    reply = conn.getresponse()
    detail = json.loads(reply.read())["detail"]
    conn.close()
    assert reply.status == 413, detail
    assert detail == f"the audio is 900.0 MB; at most {mb(CAP_MB * 2**20)} (--max-upload-mb)"
    assert client.get(f"/api/sessions/{sid}/takes").json()["takes"] == []


def test_a_take_sent_without_a_length_is_capped_as_it_arrives(client, speech):
    """A chunked body (no Content-Length) was read whole, whatever its size: the cap held only for a declared one."""
    sid = client.post("/api/sessions", json={"builtin": "ivr-commands", "speaker": "api-4", "accent": "US"}).json()[
        "id"
    ]
    over = (speech * (CAP_MB * 2**20 // len(speech) + 2))[: CAP_MB * 2**20 + 1]

    def chunks(data: bytes):
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    reply = client.post(f"/api/sessions/{sid}/takes", params={"action": "accept"}, content=chunks(over))
    assert reply.status_code == 413, reply.text
    assert reply.json()["detail"] == f"the audio is over {mb(CAP_MB * 2**20)} (--max-upload-mb)"
    assert client.get(f"/api/sessions/{sid}/takes").json()["takes"] == []
    under = client.post(f"/api/sessions/{sid}/takes", params={"action": "check"}, content=chunks(speech))
    assert under.status_code == 200 and under.json()["transcript"], under.text  # chunked under the cap: read


def test_a_session_with_a_model_or_backend_that_cannot_load_is_refused_at_the_start(client):
    """It was started (201), and every take of it was then a 400 naming the model: the tester's audio refused."""
    before = len(client.get("/api/sessions").json()["sessions"])
    scripts = len(client.get("/api/scripts").json()["scripts"])
    profile = {"builtin": "ivr-commands", "speaker": "api-5", "accent": "US"}
    for extra, said in (
        ({"model": "whisper-huge-v9"}, "unknown model 'whisper-huge-v9'; available: whisper-tiny.en"),
        ({"model": "/no/such/model"}, "no such model folder '/no/such/model'"),
        ({"backend": "nope"}, "unknown backend 'nope'; choose one of: faster-whisper, transformers"),
        # "" was taken and stored as no backend: the session's test cases were saved without one
        ({"backend": ""}, "unknown backend ''; choose one of: faster-whisper, transformers"),
        ({"model": ""}, "no model given; available: whisper-tiny.en"),
        ({"model": "a" * 5000}, "model 'aaaaaaaaaaaa...aaaaaaaaaaaaa' (5000 characters): File name too long"),  # 500
        ({"accent": "a" * 100_000}, "accent: 100000 characters; at most 100"),  # was stored, on every take
        (
            {"name": "n" * 256, "builtin": None, "text": "Hello there."},
            "script name 'nnnnnnnnnnnn...nnnnnnnnnnnnn': 256",
        ),
    ):
        reply = client.post("/api/sessions", json={**profile, **extra})
        assert reply.status_code == 400 and reply.json()["detail"].startswith(said), reply.text
    assert len(client.get("/api/sessions").json()["sessions"]) == before
    assert len(client.get("/api/scripts").json()["scripts"]) == scripts  # nor a script saved for it
    for bad, said in (
        ({"name": "n" * 1_000_000, "text": "Hello there."}, "script name 'nnnnnnnnnnnn...nnnnnnnnnnnnn': 1000000 "),
        ({"prompts": [{"id": "a", "text": "Hello there.", "type": "t" * 65}]}, "prompts: prompt 1 (a): type of 65"),
    ):
        reply = client.post("/api/scripts", json=bad)
        assert reply.status_code == 400 and reply.json()["detail"].startswith(said), reply.text[:300]
    assert len(client.get("/api/scripts").json()["scripts"]) == scripts
    left_out = client.post("/api/sessions", json={**profile, "backend": None})  # left out or null: the default
    assert left_out.status_code == 201 and left_out.json()["backend"] == "faster-whisper", left_out.text  # was ""


def test_a_builtin_script_is_stored_once_under_its_name_as_the_record_page_stores_it(app, client):
    """Each API session from {"builtin": ...} saved another copy named "script of 12 prompts", so the Record
    page's script list grew a line per scripted session; the page itself saved a built-in once, under its name."""
    from dashboard.pages.record import _prompts_from, _reuse_or_save
    from evaluation.store import Store

    first = client.post("/api/sessions", json={"builtin": "names-addresses", "speaker": "api-6", "accent": "US"})
    second = client.post("/api/sessions", json={"builtin": "names-addresses", "speaker": "api-7", "accent": "US"})
    saved = client.post("/api/scripts", json={"builtin": "names-addresses"})
    assert first.status_code == second.status_code == saved.status_code == 201, (first.text, saved.text)
    assert first.json()["script"]["id"] == second.json()["script"]["id"] == saved.json()["id"]
    assert saved.json()["name"] == "names-addresses" and saved.json()["source"] == "builtin"
    store = Store(app.data_dir)  # the page, on the same data folder, starts from that row too
    name, source, prompts, _ = _prompts_from(store, "builtin:names-addresses", "", None, "")
    assert _reuse_or_save(store, name, source, prompts) == saved.json()["id"]
    names = [s["name"] for s in client.get("/api/scripts").json()["scripts"]]
    assert names.count("names-addresses") == 1 and not any(n.startswith("script of") for n in names), names
    pasted = client.post("/api/scripts", json={"name": "mine", "text": "One.\nTwo."})
    again = client.post("/api/scripts", json={"name": "mine", "text": "One.\nTwo."})
    assert pasted.json()["source"] == "pasted" and pasted.json()["id"] != again.json()["id"]  # saved as asked


def test_a_session_refused_for_its_profile_saves_no_script(client):
    """A session without an accent or speaker id was refused (400) after its pasted script had been saved, so each
    retry left a 'script of 1 prompts' in the Record page's list."""
    scripts = len(client.get("/api/scripts").json()["scripts"])
    for profile, said in (
        ({"speaker": "api-8"}, "accent or first language: say which"),
        ({"speaker": "", "accent": "US"}, "speaker id '': required"),
    ):
        reply = client.post("/api/sessions", json={"text": "Hello there.", **profile})
        assert reply.status_code == 400 and reply.json()["detail"].startswith(said), reply.text
    assert len(client.get("/api/scripts").json()["scripts"]) == scripts
    started = client.post("/api/sessions", json={"text": "Hello there.", "speaker": "api-8", "accent": "US"})
    assert started.status_code == 201 and started.json()["script"]["name"] == "script of 1 prompt", started.text


def test_the_start_up_says_where_it_serves_without_gradio_advice(app, client):
    """The start printed Gradio's "To create a public link, set `share=True` in `launch()`": advice for a
    parameter a tester cannot reach. It now says where to open the dashboard and how to stop it."""
    assert client.get("/api/sessions").status_code == 200  # up and answering: the start-up lines are written
    log = app.log()
    assert f"INFO serving on {app.url}; Ctrl-C stops it" in log, log
    assert "share=True" not in log and "launch()" not in log, log


def test_a_json_body_over_the_cap_is_refused_as_it_arrives(client):
    """A script or session body was read whole, whatever its size (a chunked one without any limit at all)."""
    import json

    scripts = len(client.get("/api/scripts").json()["scripts"])
    prompts = [{"id": f"p{n}", "text": "Press one for sales, two for support."} for n in range(CAP_MB * 2**20 // 50)]
    body = json.dumps({"name": "huge", "prompts": prompts}).encode()
    assert len(body) > CAP_MB * 2**20
    declared = client.post("/api/scripts", content=body, headers={"Content-Type": "application/json"})
    chunked = client.post("/api/scripts", content=iter([body[: len(body) // 2], body[len(body) // 2 :]]))
    for reply in (declared, chunked):
        assert reply.status_code == 413, reply.text[:200]
        assert reply.json()["detail"].startswith("the request body is ") and "(--max-upload-mb)" in reply.text
    assert len(client.get("/api/scripts").json()["scripts"]) == scripts
