"""pytest side of environments: recenv_spec / recenv_env fixtures and ``--recenv-build``.

``--recenv-build`` is the "environment build test": the environment is built (or reused) at
session start so the header can say ``env: uv key=ab12cd34… reused in 0.3 s``, and a test item
``<env file>::recenv-build`` passes or fails with the build's report, so a broken
``environment.yml`` fails CI like any test.  Under xdist the controller builds for the header;
workers reuse the cache (the build lock makes concurrent requests build once).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_recenv.env.builders import Env
    from pytest_recenv.env.spec import Spec

_RESULT = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("recenv-env", "pytest-recenv: environments from environment.yml")
    group.addoption(
        "--recenv-build",
        action="store_true",
        default=False,
        help="environment build test: build (or reuse) the env file's environment, "
        "smoke-import its packages, and fail the run if that breaks.",
    )
    group.addoption(
        "--recenv-env-file",
        default=None,
        metavar="PATH",
        help="environment file for recenv_spec/recenv_env/--recenv-build (default: "
        "ini recenv_env_file, else environment.yml in the rootdir).",
    )
    group.addoption(
        "--recenv-backends",
        default=None,
        metavar="CHAIN",
        help="backend chain, e.g. 'uv' or 'micromamba,uv' (default: "
        "$RECENV_BACKENDS or micromamba,mamba,conda,uv).",
    )
    parser.addini(
        "recenv_env_file", "environment file, relative to the rootdir", default="environment.yml"
    )
    parser.addini("recenv_backends", "backend chain (see --recenv-backends)", default="")
    parser.addini(
        "recenv_python_policy",
        "strict or warn: when the pinned Python is missing",
        default="strict",
    )


def env_file(config: pytest.Config) -> Path:
    given = config.getoption("recenv_env_file") or config.getini("recenv_env_file")
    path = Path(given)
    return path if path.is_absolute() else config.rootpath / path


def _build(config: pytest.Config) -> Env:
    from pytest_recenv.env.builders import ensure_env

    chain = config.getoption("recenv_backends") or config.getini("recenv_backends")
    return ensure_env(
        env_file(config),
        backends=chain.split(",") if chain else None,
        python_policy=config.getini("recenv_python_policy"),
        progress=config.getoption("verbose") >= 0,
        lease=True,  # held for the session: recenv gc never removes the env under the tests
    )


def _build_once(config: pytest.Config) -> Env | BaseException:
    """Build at most once per process; remember a failure so every user reports the same one."""
    from pytest_recenv.errors import RecenvError

    if _RESULT not in config.stash:
        try:
            config.stash[_RESULT] = _build(config)
        except RecenvError as exc:
            config.stash[_RESULT] = exc
    return config.stash[_RESULT]


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("recenv_build") and not hasattr(config, "workerinput"):
        _build_once(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    result = config.stash.get(_RESULT, None)
    if result is not None and not isinstance(result, BaseException):
        result.release()


def pytest_report_header(config: pytest.Config) -> list[str]:
    result = config.stash.get(_RESULT, None)
    if result is None:
        return []
    if isinstance(result, BaseException):
        return [f"env: build FAILED for {env_file(config).name} (see the recenv-build test)"]
    return [f"env: {result.describe()}"]


class EnvBuildItem(pytest.Item):
    """The environment build test: passes when the env builds, pip-checks and imports."""

    def runtest(self) -> None:
        result = _build_once(self.config)
        if isinstance(result, BaseException):
            raise result

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        from pytest_recenv.errors import RecenvError

        if isinstance(excinfo.value, RecenvError):
            return f"environment build failed for {env_file(self.config)}:\n{excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"recenv-build: {self.path.name}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("recenv_build"):
        return
    path = env_file(config)
    try:
        rel = path.relative_to(config.rootpath).as_posix()
    except ValueError:
        rel = path.name
    item = EnvBuildItem.from_parent(
        session, name="recenv-build", path=path, nodeid=f"{rel}::recenv-build"
    )
    items.insert(0, item)


@pytest.fixture(scope="session")
def recenv_spec(pytestconfig: pytest.Config) -> Spec:
    """The parsed environment file (``.conda``, ``.pip``, ``.python``, ``.digest()``)."""
    from pytest_recenv.env.spec import load_spec
    from pytest_recenv.errors import SpecError

    path = env_file(pytestconfig)
    try:
        return load_spec(path)
    except SpecError as exc:
        pytest.fail(f"recenv_spec: {path} is not a usable environment file:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def recenv_env(pytestconfig: pytest.Config) -> Env:
    """The built environment (``.python``, ``.run(cmd)``, ``.key``, ``.backend``, ``.seconds``);
    built once per cache key across processes and xdist workers."""
    result = _build_once(pytestconfig)
    if isinstance(result, BaseException):
        pytest.fail(
            f"recenv_env: building {env_file(pytestconfig)} failed:\n{result}", pytrace=False
        )
    return result
