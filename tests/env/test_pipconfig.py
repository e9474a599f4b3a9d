"""The user's pip configuration reaches uv: read like pip reads it, proven by a real install."""

from __future__ import annotations

from pathlib import Path

import pytest
from recenv_helpers import write_env

from pytest_recenv.env import pipconfig
from pytest_recenv.env.builders import ensure_env


def _isolated(tmp_path: Path, **extra: str) -> dict[str, str]:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_DIRS": str(empty),
        "XDG_CONFIG_HOME": str(empty),
        **extra,
    }


def test_config_file_values_become_uv_flags(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://mirror.example/simple\n"
        "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n"
        "find-links = /srv/wheels\nconstraint = /srv/constraints.txt\n"
        "trusted-host = mirror.example\ncert = /srv/ca.pem\ntimeout = 60\n"
    )
    cfg = pipconfig.load(_isolated(tmp_path, PIP_CONFIG_FILE=str(conf)))
    assert cfg.uv_args() == [
        "--index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "https://a.example/simple",
        "--extra-index-url",
        "https://b.example/simple",
        "--find-links",
        "/srv/wheels",
        "--constraint",
        "/srv/constraints.txt",
        "--allow-insecure-host",
        "mirror.example",
        "--index-strategy",
        "unsafe-best-match",  # pip's behaviour: best version of all indexes
    ]
    assert cfg.uv_env() == {"SSL_CERT_FILE": "/srv/ca.pem"}


def test_a_uv_index_strategy_chosen_by_the_user_is_left_alone(tmp_path: Path) -> None:
    cfg = pipconfig.load(
        _isolated(
            tmp_path,
            PIP_EXTRA_INDEX_URL="https://a.example/simple",
            UV_INDEX_STRATEGY="first-index",
        )
    )
    assert cfg.uv_args() == ["--extra-index-url", "https://a.example/simple"]


def test_env_vars_override_files_and_install_section_overrides_global(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nfind-links = /global\nindex-url = https://g.example\n"
        "[install]\nindex-url = https://install.example\n"
    )
    cfg = pipconfig.load(
        _isolated(tmp_path, PIP_CONFIG_FILE=str(conf), PIP_FIND_LINKS="/from-env /second")
    )
    assert cfg.find_links == ["/from-env", "/second"]
    assert cfg.index_url == "https://install.example"
    assert "$PIP_FIND_LINKS" in cfg.sources


def test_user_file_overrides_global_file(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "pip").mkdir(parents=True)
    (xdg / "pip" / "pip.conf").write_text("[global]\nfind-links = /global\n")
    home = tmp_path / "home"
    (home / ".config" / "pip").mkdir(parents=True)
    (home / ".config" / "pip" / "pip.conf").write_text("[global]\nfind-links = /user\n")
    cfg = pipconfig.load({"HOME": str(home), "XDG_CONFIG_DIRS": str(xdg)})
    assert cfg.find_links == ["/user"]


def test_pip_config_file_devnull_disables_every_file(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "pip").mkdir(parents=True)
    (xdg / "pip" / "pip.conf").write_text("[global]\nfind-links = /global\n")
    cfg = pipconfig.load(
        {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": str(xdg), "PIP_CONFIG_FILE": "/dev/null"}
    )
    assert cfg.find_links == []


def test_a_new_wheel_in_find_links_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    house.mkdir()
    env = _isolated(tmp_path, PIP_FIND_LINKS=str(house))
    before = pipconfig.load(env).fingerprint()
    (house / "x-1.0-py3-none-any.whl").write_bytes(b"")
    assert pipconfig.load(env).fingerprint() != before


@pytest.mark.slow
def test_uv_build_installs_from_the_find_links_of_pip_config(
    tmp_path: Path, offline_pip: Path, cache_dir: Path
) -> None:
    # no-index + find-links come only from PIP_CONFIG_FILE: without pass-through uv finds nothing
    spec = write_env(tmp_path / "proj", "  - recenv-dep=2.0\n", "      - recenv-tiny<1.1\n")
    env = ensure_env(spec, cache_dir=cache_dir, backends=["uv"], progress=False)
    out = env.run(
        ["python", "-c", "import recenv_tiny, recenv_dep; print(recenv_tiny.VERSION)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "1.0"
    assert env.created and env.backend == "uv"
