"""The type stubs say what the extension module really has."""

import ast
from pathlib import Path

import kafkasender
from kafkasender import _kafkasender

STUB = Path(kafkasender.__file__).with_name("_kafkasender.pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    return {node.name: {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
            for node in tree.body if isinstance(node, ast.ClassDef)}


def public(names):
    return {n for n in names if not n.startswith("_") or n in {"__enter__", "__exit__", "__new__"}}


def test_every_runtime_class_and_member_is_in_the_stubs_and_nothing_else():
    classes = stub_classes()
    runtime = {name for name in dir(_kafkasender) if isinstance(getattr(_kafkasender, name), type)}
    assert set(classes) == runtime
    for name, members in classes.items():
        actual = public(dir(getattr(_kafkasender, name))) - public(dir(object))
        assert public(members) - {"__new__"} == actual - {"__new__"}, name


def test_the_package_ships_py_typed_and_exports_what_all_names():
    assert STUB.with_name("py.typed").exists()
    assert all(hasattr(kafkasender, name) for name in kafkasender.__all__)
