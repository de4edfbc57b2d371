"""The package imports from the installed wheel and its errors form one family."""

import pytest

import roomkit_graph
from roomkit_graph import errors


def test_version_is_the_crate_version():
    assert roomkit_graph.__version__.count(".") == 2


@pytest.mark.parametrize(
    "name, base",
    [
        ("GraphValidationError", "GraphError"),
        ("ConditionError", "GraphError"),
        ("TemplateError", "GraphError"),
        ("ExecutionError", "GraphError"),
        ("NoValidTransitionError", "ExecutionError"),
    ],
)
def test_error_classes_subclass_their_base(name, base):
    assert issubclass(getattr(errors, name), getattr(errors, base))
    assert getattr(roomkit_graph, name) is getattr(errors, name)


def test_package_comes_from_the_wheel_not_the_source_tree():
    assert "site-packages" in roomkit_graph.__file__
