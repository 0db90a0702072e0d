"""The `obruten` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from shared.kernel.settings import Settings
from shared.web.auth import Role, mint_token
from shared.web.registry import names, service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obruten", description="Obruten: unbroken schooling for placed children.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole suite (embedded PostgreSQL and broker unless configured)")
    serve = sub.add_parser("serve", help="run one service (what run starts for each, and what containers run)")
    serve.add_argument("service", choices=names())
    serve.add_argument("--skip-migrations", action="store_true", help="the database is already migrated")
    migrate = sub.add_parser("migrate", help="create a service's database if missing and apply its migrations")
    migrate.add_argument("service", choices=names())
    token = sub.add_parser("token", help="print a development token signed with the local key")
    token.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    token.add_argument("--district")
    token.add_argument("--subject", default="dev-user")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds")
    sub.add_parser("asyncapi", help="print the AsyncAPI document of every topic and event")
    args = parser.parse_args(argv)
    settings = Settings()

    if args.command == "run":
        from shared.local.runner import run

        return run(settings)
    if args.command == "serve":
        return _serve(settings, args.service, migrate=not args.skip_migrations)
    if args.command == "migrate":
        from shared.local.migrate import prepare_database

        asyncio.run(prepare_database(args.service, settings.service_database_url(args.service)))
        return 0
    if args.command == "token":
        key_file = settings.jwt_private_key_file or (settings.data_dir / "keys" / "jwt-private.pem")
        if not Path(key_file).exists():
            print(f"no signing key at {key_file}; start `obruten run` once to make one", file=sys.stderr)
            return 2
        if args.district and args.district not in settings.districts:
            print(f"unknown district {args.district!r}", file=sys.stderr)
            return 2
        print(
            mint_token(
                Path(key_file).read_bytes(),
                subject=args.subject,
                roles=args.role,
                district=args.district,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_seconds=args.ttl,
            )
        )
        return 0
    if args.command == "asyncapi":
        from shared.local.asyncapi import build_document

        print(json.dumps(build_document(), indent=2, ensure_ascii=False))
        return 0
    return 2


def _serve(settings: Settings, name: str, *, migrate: bool) -> int:
    import uvicorn

    from shared.kernel.logging import configure_logging

    configure_logging(settings.log_level, name)
    if migrate:
        from shared.local.migrate import prepare_database

        asyncio.run(prepare_database(name, settings.service_database_url(name)))
    app = service(name).create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.service_port(name),
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
