"""WeCom callback crypto (企业微信回调加解密), shared by the self-built app and the robot.

Signature: sha1 over the sorted [token, timestamp, nonce, encrypt], compared in constant time.
Cipher: AES-256-CBC, key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes, PKCS#7
padded to 32 bytes. Plaintext: 16 random bytes | 4-byte big-endian length | message | receiveid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class WeComCryptoError(Exception):
    """A callback that must be refused; status is the HTTP status to answer with."""

    status = 400


class SignatureError(WeComCryptoError):
    """The signature does not match: forged or corrupted."""

    status = 403


class ReceiverError(WeComCryptoError):
    """The message was encrypted for another corp or robot."""

    status = 403


class WeComCrypto:
    """Sign, verify, encrypt and decrypt for one token, EncodingAESKey and receiveid."""

    def __init__(self, token: str, encoding_aes_key: str, receiveid: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("the EncodingAESKey must be 43 characters")
        try:
            self._key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("the EncodingAESKey is not valid base64") from exc
        self._token = token
        self._receiveid = receiveid.encode()

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """Return the lowercase hex sha1 signature WeCom computes."""
        parts = sorted([self._token, str(timestamp), str(nonce), encrypt])
        return hashlib.sha1("".join(parts).encode()).hexdigest()

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise SignatureError unless msg_signature signs the request (constant time)."""
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), (msg_signature or "").lower().encode()):
            raise SignatureError("bad signature")

    def decrypt(self, encrypt: str) -> str:
        """Decrypt a message, checking its padding, length and receiveid."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WeComCryptoError("encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise WeComCryptoError("ciphertext is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise WeComCryptoError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise WeComCryptoError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receiveid = plain[20:20 + length], plain[20 + length:]
        if len(message) != length:
            raise WeComCryptoError("message length out of range")
        if not hmac.compare_digest(receiveid, self._receiveid):
            raise ReceiverError("wrong receiveid")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WeComCryptoError("message is not UTF-8") from exc

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        """Encrypt a message for WeCom (random_prefix only for known-answer tests)."""
        body = message.encode()
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(body)) + body + self._receiveid
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify then decrypt: the whole inbound check."""
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)
