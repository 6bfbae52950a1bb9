"""Which entries of a Mosquitto password file the `broker` role must write or remove.

Run on the broker with the file's path as the only argument and JSON on stdin:
``{"enforce": {user: password}, "seed": {user: password}, "remove": [user]}``. Prints JSON:
``{"update": [user], "remove": [user]}``, where ``update`` holds each enforced user whose
entry is missing or does not verify its password (or uses an older hash than ``$7$``) and each
seeded user without an entry, and ``remove`` each user to remove that has an entry. Passwords
never leave this process; the file is only read.
"""

import base64
import binascii
import hashlib
import hmac
import json
import sys


def entries(path):
    """``{user: hash}`` from the password file; an absent file has no entries."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        user, sep, hashed = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            found[user] = hashed
    return found


def verifies(hashed, password):
    """Whether ``hashed`` (``$7$iterations$salt$digest``, PBKDF2-SHA512) is ``password``'s."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    ours = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(ours, digest)


def main():
    request = json.load(sys.stdin)
    current = entries(sys.argv[1])
    update = [
        user
        for user, password in sorted(request.get("enforce", {}).items())
        if user not in current or not verifies(current[user], password)
    ]
    update += [user for user in sorted(request.get("seed", {})) if user not in current]
    remove = [user for user in sorted(set(request.get("remove", []))) if user in current]
    json.dump({"update": update, "remove": remove}, sys.stdout)


if __name__ == "__main__":
    main()
