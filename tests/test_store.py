import pytest
from sqlalchemy.exc import IntegrityError

from muses.collection.store import CROPPED, OK, PROBLEM, Image, Item, Store


def _item(i, **kw):
    return Item(id=str(i), title=f"Object {i}", object_type=["Sculpture", "Busts"], **kw)


def test_store_is_a_real_sqlite_file(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with store.transaction() as s:
        s.add(_item(1, images=[Image(original="/a.jpg", status=OK)]))
    assert (tmp_path / "m.sqlite").stat().st_size > 0
    reopened = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    item = reopened.get_item("1")
    assert item.title == "Object 1" and item.primary_object_type == "Sculpture"
    assert [im.original for im in item.usable_images] == ["/a.jpg"]


def test_a_failed_batch_leaves_the_store_as_it_was(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with store.transaction() as s:
        s.add(_item(1))
    with pytest.raises(IntegrityError):
        with store.transaction() as s:
            s.add(_item(2))
            s.flush()
            s.add(_item(1))  # duplicate primary key: the whole batch must roll back
            s.flush()
    assert [i.id for i in store.items()] == ["1"]


def test_items_iterates_in_batches_and_by_ids(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with store.transaction() as s:
        s.add_all(_item(f"{i:03d}") for i in range(25))
    assert len(list(store.items(batch_size=7))) == 25
    assert [i.id for i in store.items(["003", "010", "nope"])] == ["003", "010"]


def test_stats_counts_statuses_and_problems(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    with store.transaction() as s:
        s.add(_item(1, images=[Image(original="/a.jpg", status=OK), Image(original="/b.jpg", status=CROPPED)]))
        s.add(_item(2, images=[Image(original="/c.jpg", status=PROBLEM, problem="blank")]))
        s.add(_item(3, classification={"model": "m", "date": "2026-01-01", "classes": []}))
    stats = store.stats()
    assert stats["items"] == 3 and stats["images"] == 3
    assert stats["items_without_images"] == 1 and stats["items_classified"] == 1
    assert stats["images_by_status"] == {OK: 1, CROPPED: 1, PROBLEM: 1}
