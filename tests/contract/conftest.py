import pytest

from sandbox.contract import get_contract


@pytest.fixture(autouse=True)
def _isolated_var_dir():
    """Overrides tests/conftest.py's fixture of this name, which needs pytest-django's ``settings``.

    The contract tests need neither Django nor a var/ dir and must run with ``-p no:django``.
    """
    yield


@pytest.fixture(scope="session")
def asana():
    return get_contract("asana")


@pytest.fixture(scope="session")
def acumatica():
    return get_contract("acumatica")
