import pytest

from tuneline.errors import RegistryError
from tuneline.registry.local import LocalRegistry


def test_versions_are_numbered_and_copied(tmp_path):
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "w.bin").write_bytes(b"1")
    registry = LocalRegistry(tmp_path / "reg")
    v1 = registry.register("m", files={"adapter": src}, meta={"base_model": "b"})
    (src / "w.bin").write_bytes(b"2")
    v2 = registry.register("m", files={"adapter": src}, meta={"base_model": "b"})
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.adapter_dir / "w.bin").read_bytes() == b"1"
    assert registry.get("m").version == 2
    assert registry.get("m/1").meta["base_model"] == "b"
    assert registry.names() == ["m"]


def test_unknown_names_list_what_exists(tmp_path):
    registry = LocalRegistry(tmp_path / "reg")
    with pytest.raises(RegistryError):
        registry.get("nothing")
    src = tmp_path / "f.txt"
    src.write_text("x")
    registry.register("known", files={"f.txt": src}, meta={})
    with pytest.raises(RegistryError, match="known"):
        registry.get("other")
    with pytest.raises(RegistryError):
        registry.get("known/7")
