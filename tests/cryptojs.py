"""SSO payloads made by crypto-js itself (tests/vendor/crypto-js), run by node: HighLevel's own implementation,
independent of integration.sso."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

CRYPTO_JS = Path(__file__).parent / "vendor" / "crypto-js" / "crypto-js.js"
NODE = shutil.which("node") or "/usr/bin/node"

_SCRIPT = """
const CryptoJS = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { plaintext, secret } = JSON.parse(input);
  process.stdout.write(CryptoJS.AES.encrypt(plaintext, secret).toString());
});
"""


def cryptojs_encrypt(data: dict | str, secret: str) -> str:
    """`CryptoJS.AES.encrypt(JSON.stringify(data), secret).toString()`, as HighLevel makes the payload."""
    plaintext = data if isinstance(data, str) else json.dumps(data)
    result = subprocess.run([NODE, "-e", _SCRIPT, str(CRYPTO_JS)], input=json.dumps(
        {"plaintext": plaintext, "secret": secret}).encode(), capture_output=True, check=True, timeout=30)
    return result.stdout.decode()
