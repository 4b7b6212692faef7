"""Read one orgvault chunk (format v1, docs/format.md) without orgvault, given its data key.
Usage: python decrypt_chunk.py CHUNK.ovc DATA_KEY_HEX   -> one JSON record per line.
Get the data key from the header's wrapped_key: with AWS, kms.decrypt(KeyId=header["key_ref"],
CiphertextBlob=b64decode(header["wrapped_key"]), EncryptionContext=header["context"])["Plaintext"]."""

import base64
import json
import struct
import sys

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def decrypt(sealed: bytes, data_key: bytes) -> bytes:
    magic, version, header_len = struct.unpack(">4sBI", sealed[:9])
    if magic != b"OVLT" or version != 1:
        raise SystemExit(f"not an orgvault format-1 object (magic {magic!r}, version {version})")
    aad, body = sealed[: 9 + header_len], sealed[9 + header_len :]  # AAD = every byte before the body
    header = json.loads(sealed[9 : 9 + header_len])
    prefix, size = base64.b64decode(header["nonce"]), header["segment_size"] + 16
    segments = [body[i : i + size] for i in range(0, len(body), size)]
    aes = AESGCM(data_key)  # nonce = 7-byte prefix | segment index u32 BE | 1 if last segment else 0
    plain = b"".join(
        aes.decrypt(prefix + struct.pack(">IB", i, i == len(segments) - 1), seg, aad)
        for i, seg in enumerate(segments)
    )
    return (
        zstandard.ZstdDecompressor().decompressobj().decompress(plain)
        if header["compression"] == "zstd"
        else plain
    )


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        lines = decrypt(f.read(), bytes.fromhex(sys.argv[2])).decode("utf-8").splitlines()
    fields = json.loads(lines[0])["fields"]  # first line: the field order; then one JSON array per record
    for line in lines[1:]:
        print(json.dumps(dict(zip(fields, json.loads(line), strict=True)), ensure_ascii=False))
