"""Property-based tests: no input crashes the WeCom decrypt/parse path or the knowledge loader;
every rejection is a clean, typed error."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.channels.wecom.crypto import WeComCrypto, WeComCryptoError
from bot.channels.wecom.server import Refused, _parse_xml
from bot.kb.loader import check_knowledge

KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
CRYPTO = WeComCrypto("token", KEY, "corp")
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.text())
def test_decrypt_any_text_is_an_answer_or_a_clean_refusal(encrypt: str) -> None:
    try:
        CRYPTO.decrypt(encrypt)
    except WeComCryptoError as exc:
        assert exc.status in (400, 403)


@FAST
@given(st.binary(min_size=0, max_size=512))
def test_decrypt_any_ciphertext_bytes(raw: bytes) -> None:
    try:
        CRYPTO.decrypt(base64.b64encode(raw).decode())
    except WeComCryptoError as exc:
        assert exc.status in (400, 403)


@FAST
@given(st.text(), st.text(), st.text(), st.text())
def test_signature_check_never_crashes(sig: str, ts: str, nonce: str, encrypt: str) -> None:
    try:
        CRYPTO.verify(sig, ts, nonce, encrypt)
    except WeComCryptoError as exc:
        assert exc.status == 403


@FAST
@given(st.text(max_size=2000))
def test_round_trip_of_any_message(message: str) -> None:
    assert CRYPTO.decrypt(CRYPTO.encrypt(message)) == message


xml_like = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda inner: f"<xml><Encrypt>{inner}</Encrypt></xml>".encode(), st.text()),
    st.builds(lambda name, body: f'<!DOCTYPE x [<!ENTITY {name} "{body}">]><x>&{name};</x>'
              .encode(), st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(max_size=50)),
)


@FAST
@given(xml_like)
def test_xml_parsing_refuses_cleanly(data: bytes) -> None:
    try:
        _parse_xml(data)
    except Refused as exc:
        assert exc.status == 400


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=600),
    st.builds(lambda fm, body: f"---\n{fm}\n---\n{body}", st.text(max_size=300),
              st.text(max_size=100)),
    st.builds(lambda q: "---\nid: x-1\ntitle: t\nquestions: " + json.dumps(q, ensure_ascii=False)
              + "\ntopic: t\nbasis: 媒体报道\nsources: [{ref: a, date: 2025}]\nas_of: 2025\n"
              "---\n答案", st.lists(st.text(max_size=20), max_size=6)),
))
# Found on a fresh machine: a null or complex key in the front matter raised KeyError: None.
@example("---\n? \n---\n答案")
@example("---\n? [a, b]\n: x\n---\n答案")
@example("---\n? \n: x\nid: x-1\n---\n答案")
def test_any_entry_file_loads_or_names_its_problems(tmp_path_factory, text: str) -> None:
    root = tmp_path_factory.mktemp("kb")
    (root / "entries").mkdir()
    (root / "entries" / "e.md").write_text(text, encoding="utf-8")
    kb, problems = check_knowledge(root)
    assert kb is not None or problems
    for problem in problems:  # each names a place: the file (file:line) or the folder
        assert problem.path.endswith(("entries/e.md", "entries")), str(problem)
        assert problem.line >= 0 and problem.message


def test_a_binary_entry_file_is_named_not_raised(tmp_path: Path) -> None:
    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / "bad.md").write_bytes(b"\xff\xfe\x00garbage")
    kb, problems = check_knowledge(tmp_path)
    assert kb is None and "UTF-8" in str(problems[0])
