"""`muses db upgrade` and `muses db current`: the store's schema version."""
from __future__ import annotations

from muses.cli import add_project_arg
from muses.settings import find_project

DB_EXAMPLES = """\
examples:
  muses db current     # the store's schema revision, and whether it is the newest
  muses db upgrade     # bring the store to the newest revision (back it up first)

The store is $MUSES_STORE_URL, else [store] url in muses.toml, else the project's muses.sqlite.
"""


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("db", help="the collection store's schema: show its revision, upgrade it",
                              description="The collection store's schema version (Alembic migrations).",
                              epilog=DB_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("upgrade", help="bring the store to the newest schema revision")
    add_project_arg(up)
    up.set_defaults(func=run_upgrade)
    current = actions.add_parser("current", help="show the store's schema revision")
    add_project_arg(current)
    current.set_defaults(func=run_current)


def _store(args):
    from muses.collection.store import Store

    return Store.for_project(find_project(args.project), check_schema=False)


def run_upgrade(args) -> int:
    from muses.collection import schema

    store = _store(args)
    before = schema.upgrade(store.engine, name=store.name)
    after = schema.revisions(store.engine).current
    if before == after:
        print(f"the store {store.name} was already at the newest schema revision ({after}); nothing to do.")
    else:
        print(f"upgraded the store {store.name} from schema revision {before or 'none'} to {after}.")
    print("next: carry on with any muses command (muses stats shows what the store holds).")
    return 0


def run_current(args) -> int:
    from muses.collection import schema

    store = _store(args)
    revs = schema.revisions(store.engine)
    print(f"store: {store.name}")
    print(f"schema revision: {revs.current or 'none (a new store, or one made before migrations)'}")
    print(f"newest revision: {revs.head}")
    if revs.up_to_date:
        print("the store is up to date; next: carry on with any muses command.")
    elif revs.current is None:
        print("next: nothing to do; the next muses command makes a new store, or records the revision of one "
              "made before migrations (`muses db upgrade` does it now).")
    else:
        print("next: back up the store, then run `muses db upgrade`.")
    return 0
