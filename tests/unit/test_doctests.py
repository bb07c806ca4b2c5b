"""Every docstring example in models/ and schemas/ runs and holds."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import models
import schemas

MODULES = sorted(
    info.name
    for package in (models, schemas)
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
)


def test_modules_are_found() -> None:
    for name in ("models.state", "models.engine", "models.scoring", "schemas.events"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"
