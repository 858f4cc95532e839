"""``meshgate token``: print a demo access token signed with the demo auth service's key.

The token verifies at the edge only if the auth service publishes the same key:
start it with ``--key-file FILE`` (``meshgate demo`` does, and prints the path)
and pass the same FILE here with ``--key`` (or ``$MESHGATE_AUTH_KEY_FILE``).
Issuer and audience must match the edge's ``auth.issuer`` / ``auth.audience``.
"""

from __future__ import annotations

import argparse
import os
import sys

KEY_FILE_ENV = "MESHGATE_AUTH_KEY_FILE"
"""Where ``--key`` defaults from."""
EXIT_USAGE = 2


def run_token(args: argparse.Namespace) -> int:
    """Print one token for ``args``; the exit status."""
    from demo.auth_service import key_id_for, load_key_file, mint_token

    key_file = args.key or os.environ.get(KEY_FILE_ENV)
    if not key_file:
        print(
            f"meshgate: --key FILE is required (the auth service's --key-file), or set "
            f"{KEY_FILE_ENV}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        key = load_key_file(key_file)
    except (OSError, ValueError) as exc:
        print(f"meshgate: cannot use key file {key_file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    token = mint_token(
        key,
        key_id_for(key),
        args.sub,
        args.role,
        args.issuer,
        args.audience,
        args.ttl,
        args.email,
    )
    print(token)
    return 0
