"""``make token USER=alice ROLE=student NAME=Alice``: a development JWT for IM_JWT_SECRET."""

from __future__ import annotations

import argparse

from shared.auth import Role, issue_token
from shared.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", choices=[r.value for r in Role], default=Role.STUDENT.value)
    parser.add_argument("--name", default="")
    parser.add_argument("--ttl-hours", type=float, default=24.0)
    args = parser.parse_args()
    settings = get_settings()
    print(
        issue_token(
            args.user,
            args.role,
            settings.jwt_secret,
            name=args.name or None,
            ttl_s=args.ttl_hours * 3600,
        )
    )


if __name__ == "__main__":
    main()
