"""Fixtures of the end-to-end modules that share one stack per module."""

from __future__ import annotations

import pytest

from tests.support.stack import Gateway, Stack


@pytest.fixture
def gw(module_stack: Stack) -> Gateway:
    """The gateway of the module's stack (a module using it defines ``module_stack``)."""
    return module_stack.gateways[0]
