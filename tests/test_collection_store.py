import importlib.util
import multiprocessing
import sqlite3
import threading
import time

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from muses.collection.store import CROPPED, OK, PROBLEM, Image, Item, Store
from muses.errors import RunFailed
from muses.settings import CONFIG_NAME, ConfigError, Project


def _item(i, **kw):
    return Item(id=str(i), title=f"Object {i}", object_type=["Sculpture", "Busts"], **kw)


def test_store_keeps_items_between_opens(store_url):
    store = Store(store_url)
    with store.transaction() as s:
        s.add(_item(1, images=[Image(original="/a.jpg", status=OK)]))
    store.engine.dispose()
    reopened = Store(store_url)
    item = reopened.get_item("1")
    assert item.title == "Object 1" and item.primary_object_type == "Sculpture"
    assert [im.original for im in item.usable_images] == ["/a.jpg"]


def test_a_record_is_named_by_its_object_number_or_else_its_id_in_python_and_in_sql(store_url):
    store = Store(store_url)
    with store.transaction() as s:
        s.add_all([_item(1, object_number="1985.141.1"), _item(2, object_number="")])
    assert {i.id: i.number for i in store.items()} == {"1": "1985.141.1", "2": "2"}
    with store.session() as s:
        assert dict(s.execute(select(Item.id, Item.number).order_by(Item.id)).all()) == {"1": "1985.141.1", "2": "2"}
        assert s.scalars(select(Item.id).where(Item.number == "2")).all() == ["2"]


def test_a_failed_batch_leaves_the_store_as_it_was(store_url):
    store = Store(store_url)
    with store.transaction() as s:
        s.add(_item(1))
    with pytest.raises(IntegrityError):
        with store.transaction() as s:
            s.add(_item(2))
            s.flush()
            s.add(_item(1))  # duplicate primary key: the whole batch must roll back
            s.flush()
    assert [i.id for i in store.items()] == ["1"]


def test_items_iterates_in_batches_and_by_ids(store_url):
    store = Store(store_url)
    with store.transaction() as s:
        s.add_all(_item(f"{i:03d}") for i in range(25))
    assert len(list(store.items(batch_size=7))) == 25
    assert [i.id for i in store.items(["003", "010", "nope"])] == ["003", "010"]


def test_stats_counts_statuses_and_problems(store_url):
    store = Store(store_url)
    with store.transaction() as s:
        s.add(_item(1, images=[Image(original="/a.jpg", status=OK), Image(original="/b.jpg", status=CROPPED)]))
        s.add(_item(2, images=[Image(original="/c.jpg", status=PROBLEM, problem="blank")]))
        s.add(_item(3, classification={"model": "m", "date": "2026-01-01", "classes": []}))
    stats = store.stats()
    assert stats["items"] == 3 and stats["images"] == 3
    assert stats["items_without_images"] == 1 and stats["items_classified"] == 1
    assert stats["images_by_status"] == {OK: 1, CROPPED: 1, PROBLEM: 1}


def test_items_needing_attention_are_chosen_and_counted_by_the_database(store_url):
    """`muses items --problems` and its "N more not shown" ask the database, not a walk of every item."""
    store = Store(store_url)
    with store.transaction() as s:
        s.add(_item(1, images=[Image(original="/a.jpg", status=OK)]))  # fine
        s.add(_item(2, images=[Image(original="/b.jpg", status=OK),
                               Image(original="/c.jpg", status=PROBLEM, problem="blank")]))  # a problem photo
        s.add(_item(3))  # no photo
        s.add(_item(4, images=[Image(original="/d.jpg")]))  # not checked yet: nothing usable
    assert [i.id for i in store.items(needing_attention=True, batch_size=2)] == ["2", "3", "4"]
    assert (store.count_items(), store.count_items(needing_attention=True)) == (4, 3)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert store.count_items() == 4 and len(statements) == 1 and "count(" in statements[0].lower()


# -- locks, races and unwritable stores (issue 11) --------------------------------------------
def _hold_write_lock(path):
    """A second, real SQLite connection holding the write lock, as another program would."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_lock_held_past_the_busy_timeout_stops_the_run_with_a_message(project):
    (project.root / CONFIG_NAME).write_text("[store]\nbusy_timeout = 0.3\n")
    store = Store.for_project(Project.load(project.root))
    holder = _hold_write_lock(project.root / "muses.sqlite")
    started = time.monotonic()
    with pytest.raises(RunFailed, match=r"muses.sqlite is locked: another muses command \(or another program\) "
                                        r"has been writing to it for more than 0.3 s.*busy_timeout"):
        with store.transaction() as s:
            s.add(_item(1))
    assert 0.3 <= time.monotonic() - started < 3  # the setting, not SQLite's own 5 s
    holder.rollback()
    with store.transaction() as s:  # the lock gone, the same store writes again
        s.add(_item(1))
    assert store.get_item("1") is not None


def test_a_write_waits_for_a_short_lock(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}", busy_timeout=10)
    holder = _hold_write_lock(tmp_path / "m.sqlite")
    threading.Timer(0.3, holder.rollback).start()
    with store.transaction() as s:
        s.add(_item(1))
    assert store.get_item("1") is not None


def _open_store(url, barrier):
    barrier.wait()
    Store(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_first_runs_at_once_all_create_the_schema(backend, tmp_path, request):
    ctx = multiprocessing.get_context("fork")
    for attempt in range(8):  # the race is a matter of timing: try it a few times
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / f'm{attempt}.sqlite'}"
        else:
            url = request.getfixturevalue("pg_cluster").new_database()
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_store, args=(url, barrier)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
        assert Store(url).stats()["items"] == 0


def test_a_read_only_store_refuses_writes_with_a_message(tmp_path):
    path = tmp_path / "m.sqlite"
    with Store(f"sqlite:///{path}").transaction() as s:
        s.add(_item(1))
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert read_only.get_item("1") is not None
    with pytest.raises(RunFailed, match=r"cannot use the collection store .*m.sqlite: .*readonly.*may be written"):
        with read_only.transaction() as s:
            s.add(_item(2))


def test_a_store_that_cannot_be_opened_is_a_failed_run(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFailed, match="unable to open database file"):
        Store(f"sqlite:///{tmp_path / 'file' / 'm.sqlite'}")  # a file stands where its folder should be


def test_a_full_disk_stops_the_run_with_a_message(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    store.engine.dispose()
    # SQLite's own page limit gives the very error a full disk gives (SQLITE_FULL)
    event.listen(store.engine, "connect", lambda conn, _: conn.execute("PRAGMA max_page_count = 8"))
    with pytest.raises(RunFailed, match=r"m.sqlite: database or disk is full\. Check that the disk has free space"):
        with store.transaction() as s:
            s.add(_item(1, description="x" * 200_000))
    assert store.stats()["items"] == 0


@pytest.mark.parametrize("url, message", [
    ("not a url", r"is not one SQLAlchemy can use \(Could not parse"),
    ("nosuchdb://host/muses", r"is not one SQLAlchemy can use \(Can't load plugin"),
    ("postgresql+nosuchdriver://user:secret@localhost/muses", r"Can't load plugin"),
])
def test_a_store_url_that_cannot_work_is_a_settings_error(url, message):
    with pytest.raises(ConfigError, match=message) as info:
        Store(url)
    assert "secret" not in str(info.value)


def test_a_missing_database_driver_is_named():
    if importlib.util.find_spec("pg8000"):
        pytest.skip("pg8000 is installed here, so it cannot be missing")
    with pytest.raises(ConfigError, match=r"needs the database driver 'pg8000', which is not installed; install it"):
        Store("postgresql+pg8000://user:secret@localhost/muses")


def test_muses_store_url_in_the_environment_wins_over_muses_toml(project, tmp_path, monkeypatch):
    toml = project.root / CONFIG_NAME
    toml.write_text(toml.read_text().replace('url = ""', f'url = "sqlite:///{tmp_path / "toml.sqlite"}"', 1))
    monkeypatch.setenv("MUSES_STORE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    assert Store.for_project(Project.load(project.root)).name == str(tmp_path / "env.sqlite")
    assert Project.load(project.root).store_url == f"sqlite:///{tmp_path / 'env.sqlite'}"  # one answer everywhere
    monkeypatch.delenv("MUSES_STORE_URL")
    assert Store.for_project(Project.load(project.root)).name == str(tmp_path / "toml.sqlite")


def test_a_database_server_that_cannot_be_reached_is_a_failed_run_with_a_message(tmp_path):
    url = f"postgresql+psycopg://curator:secret@/muses?host={tmp_path}&port=1"  # no server on that socket
    with pytest.raises(RunFailed, match=r"cannot connect to the collection store .*Check that the database server is "
                                        r"running and that \[store\] url") as info:
        Store(url)
    assert "secret" not in str(info.value)


def test_a_database_that_does_not_exist_is_a_failed_run_with_a_message(pg_cluster):
    with pytest.raises(RunFailed, match=r'cannot connect .*database "nowhere" does not exist'):
        Store(pg_cluster.url("nowhere"))
