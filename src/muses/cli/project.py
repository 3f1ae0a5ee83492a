"""`muses init`."""
from __future__ import annotations

from pathlib import Path

from muses.cli import command_parser
from muses.settings import CONFIG_NAME, init_project


def register(subparsers) -> None:
    p = command_parser(
        subparsers,
        "init",
        help="create a project folder with a commented muses.toml and an example definitions.toml",
        examples="  muses init my-museum\n  muses init            # the current directory",
    )
    p.add_argument("dir", nargs="?", default=None, help="folder to create (default: --project or the current one)")
    p.add_argument("--force", action="store_true", help="overwrite existing muses.toml and definitions.toml")
    p.set_defaults(func=run_init)


def run_init(args) -> int:
    root = Path(args.dir or args.project or ".")
    written = init_project(root, force=args.force)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{root / CONFIG_NAME} already exists; nothing written (use --force to overwrite)")
    print(f"next: write your classes and their catalog keywords in {root / 'definitions.toml'}, then "
          f"muses import EXPORT_FILE --project {root}   (your catalog export: CSV, JSON or JSON Lines)")
    return 0
