"""The engine on real human speech (Debian's asterisk prompts): languages per window, whole long prompts,
utterance starts, identical text on every run and in any batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.audio import load_audio
from asr.models import UnknownModelError

SOUNDS = Path("/usr/share/asterisk/sounds")
FRENCH = SOUNDS / "fr_CA_f_June" / "agent-loginok.wav"  # "Vous êtes maintenant en ligne."
ITALIAN = SOUNDS / "it_IT_m_Carlo" / "agent-loginok.wav"  # "Operatore connesso."


def _real(path: Path):
    if not path.exists():
        pytest.skip(f"real speech {path} is absent (scripts/setup.sh installs asterisk-core-sounds-*-wav)")
    return load_audio(path)


@pytest.fixture(scope="session")
def base_fw():
    from asr.backends import get_backend

    try:
        return get_backend("whisper-base", "faster-whisper")
    except UnknownModelError as exc:
        pytest.skip(f"whisper-base is not installed: {exc}")


def test_each_window_of_a_batch_gets_its_own_language(base_fw):
    from asr.transcribe import transcribe_many

    french, italian = _real(FRENCH), _real(ITALIAN)
    results = transcribe_many([french, italian], backend=base_fw)
    assert [r.language for r in results] == ["fr", "it"]
    assert "ligne" in results[0].text.lower()
    swapped = transcribe_many([italian, french], backend=base_fw)
    assert [r.text for r in swapped] == [results[1].text, results[0].text]


def test_a_forced_language_is_kept(base_fw):
    from asr.results import DecodeOptions
    from asr.transcribe import transcribe

    result = transcribe(_real(FRENCH), backend=base_fw, options=DecodeOptions(language="fr"))
    assert result.language == "fr" and "ligne" in result.text.lower()
