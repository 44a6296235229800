"""Schemathesis hooks for tests/schemathesis/run: the operator's opaque key on every request.

Operations under test end that key now and then (logout, revoke_all, sessions): a fresh one
is minted with the CLI every few seconds, so the authenticated operations stay reachable.
"""

import os
import subprocess

import schemathesis


@schemathesis.auth(refresh_interval=2)
class OperatorKey:
    def get(self, case, ctx):
        out = subprocess.run(
            [os.environ["TESSERA_BINARY"], "create-token", "operator"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # "Generated token <key> for user operator"
        return out.split()[2]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Token {data}"
