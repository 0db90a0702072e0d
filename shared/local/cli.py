"""The `obruten` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from pathlib import Path
from typing import Any

from shared.kernel.settings import Settings
from shared.local.importer import add_import_command
from shared.web.auth import Role, mint_token
from shared.web.registry import names, service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="obruten", description="Obruten: unbroken schooling for placed children.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole suite (embedded PostgreSQL and broker unless configured)")
    serve = sub.add_parser("serve", help="run one service (what run starts for each, and what containers run)")
    serve.add_argument("service", choices=names())
    serve.add_argument("--skip-migrations", action="store_true", help="the database is already migrated")
    relay = sub.add_parser("relay", help="publish one service's outbox, for OBRUTEN_OUTBOX_RELAY_IN_PROCESS=false")
    relay.add_argument("service", choices=names())
    _add_operations_commands(sub)
    token = sub.add_parser("token", help="print a development token signed with the local key")
    token.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    token.add_argument("--district")
    token.add_argument("--subject", default="dev-user")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds")
    sub.add_parser("asyncapi", help="print the AsyncAPI document of every topic and event")
    add_import_command(sub)
    args = parser.parse_args(argv)
    settings = Settings()

    if args.command == "run":
        from shared.local.runner import run

        return run(settings)
    if args.command == "serve":
        return _serve(settings, args.service, migrate=not args.skip_migrations)
    if args.command == "relay":
        return _relay(settings, args.service)
    if args.command in OPERATIONS:
        return _operations(settings, args)
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
    if args.command == "import":
        from shared.local.importer import send_import

        return send_import(settings, args.service, args.file, url=args.url, token=args.token, as_json=args.json)
    if args.command == "asyncapi":
        from shared.local.asyncapi import build_document

        print(json.dumps(build_document(), indent=2, ensure_ascii=False))
        return 0
    return 2


OPERATIONS = ("migrate", "topics", "keys", "replay")


def _add_operations_commands(sub: Any) -> None:
    """The one-shot steps a deployment runs (docker-compose's init services, Kubernetes Jobs)."""
    migrate = sub.add_parser("migrate", help="create services' databases if missing and apply their migrations")
    migrate.add_argument("service", nargs="+", choices=[*names(), "all"])
    sub.add_parser("topics", help="create the topics (partitions and replication factor from the settings)")
    keys = sub.add_parser("keys", help="make a signing key pair (if missing) and a service token in a directory")
    keys.add_argument("directory", type=Path)
    replay = sub.add_parser("replay", help="rebuild a service's projection from the topics (docs/operations.md)")
    # Any registered service; one without a replay (its spec's `replay`) is told so.
    replay.add_argument("service", choices=names())


def _operations(settings: Settings, args: argparse.Namespace) -> int:
    from shared.local import provision

    if args.command == "migrate":
        services = list(names()) if "all" in args.service else args.service
        asyncio.run(provision.migrate(settings, services))
    elif args.command == "topics":
        asyncio.run(provision.create_topics(settings))
    elif args.command == "keys":
        provision.make_keys(settings, args.directory)
    elif args.command == "replay":
        from shared.local.replay import main as replay_main

        return replay_main(settings, args.service)
    return 0


def _relay(settings: Settings, name: str) -> int:
    from shared.kernel.logging import configure_logging
    from shared.kernel.tracing import configure_tracing
    from shared.local.relay import main as relay_main

    configure_logging(settings.log_level, name)
    configure_tracing(name)
    return relay_main(settings, name)


def _serve(settings: Settings, name: str, *, migrate: bool) -> int:
    import uvicorn

    from shared.kernel.logging import configure_logging
    from shared.kernel.tracing import configure_tracing

    configure_logging(settings.log_level, name)
    configure_tracing(name)
    if migrate and service(name).migrations is not None:
        from shared.local.migrate import prepare_database

        asyncio.run(prepare_database(name, settings.service_database_url(name)))
    app = service(name).create_app(settings)
    # What start-up made (modules, the app, its routes) lives as long as the process: out of the
    # collector's generations, full collections no longer walk it on every request burst.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.service_port(name),
        log_config=None,
        proxy_headers=True,
        server_header=False,
        # shared/requestlog.py writes the access lines (structured, route templates, no colours).
        access_log=False,
        use_colors=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
