"""WeCom crypto against every reference vector, and every way a callback can be malformed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from bot.channels.wecom.crypto import (
    ReceiverError,
    SignatureError,
    WeComCrypto,
    WeComCryptoError,
)

# A copy of shared/reference/wecom-test-vectors.json (Tencent's samples and wechatpy's tests).
VECTORS = json.loads((Path(__file__).parent / "vectors" / "wecom-test-vectors.json")
                     .read_text("utf-8"))


def _crypto(v: dict) -> WeComCrypto:
    return WeComCrypto(v["token"], v["encoding_aes_key"], v["receiveid"])


@pytest.mark.parametrize("v", [v for v in VECTORS if v["kind"] != "ENCRYPT"],
                         ids=lambda v: v["name"])
def test_known_answer_verify_and_decrypt(v: dict) -> None:
    crypto = _crypto(v)
    encrypt = unquote(v["echostr_urlencoded"]) if "echostr_urlencoded" in v else v["encrypt"]
    assert crypto.open(v["msg_signature"], v["timestamp"], v["nonce"], encrypt) \
        == v["expected_plaintext"]
    negative = v.get("negative_case")
    if negative:
        with pytest.raises(SignatureError):
            crypto.open(v["msg_signature"], v["timestamp"], negative["nonce"], encrypt)


@pytest.mark.parametrize("v", [v for v in VECTORS if "random_prefix" in v],
                         ids=lambda v: v["name"])
def test_known_answer_encrypt_and_sign(v: dict) -> None:
    crypto = _crypto(v)
    encrypted = crypto.encrypt(v["expected_plaintext"], v["random_prefix"].encode())
    assert encrypted == v["encrypt"]
    assert crypto.signature(v["timestamp"], v["nonce"], encrypted) == v["msg_signature"]


def test_round_trip_with_a_random_prefix_and_an_empty_receiveid() -> None:
    crypto = WeComCrypto("tok", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "")
    message = json.dumps({"text": {"content": "个体店怎么开" * 50}}, ensure_ascii=False)
    first, second = crypto.encrypt(message), crypto.encrypt(message)
    assert first != second and crypto.decrypt(first) == message == crypto.decrypt(second)


def test_malformed_ciphertexts_are_clean_errors() -> None:
    v = VECTORS[1]
    crypto = _crypto(v)
    other = WeComCrypto(v["token"], v["encoding_aes_key"], "another-corp")
    with pytest.raises(ReceiverError):
        other.decrypt(v["encrypt"])
    with pytest.raises(SignatureError):
        crypto.verify("0" * 40, v["timestamp"], v["nonce"], v["encrypt"])
    with pytest.raises(SignatureError):
        crypto.verify("", v["timestamp"], v["nonce"], v["encrypt"])
    raw = base64.b64decode(v["encrypt"])
    for bad in ("not base64!!", "", base64.b64encode(raw[:-3]).decode(),
                base64.b64encode(raw[:-16]).decode(),  # the padding block is gone
                base64.b64encode(bytes(32)).decode()):
        with pytest.raises(WeComCryptoError) as info:
            crypto.decrypt(bad)
        assert info.value.status in (400, 403)


def test_keys_are_checked_at_start() -> None:
    with pytest.raises(ValueError, match="43"):
        WeComCrypto("t", "short", "")
    with pytest.raises(ValueError, match="base64"):
        WeComCrypto("t", "!" * 43, "")
