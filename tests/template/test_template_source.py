"""The default `recenv_requirement` ("auto") resolves to wherever the template came from.

Each bake here runs the real `cookiecutter` command, as a user types it, with no answer for
`recenv_requirement`: from a local checkout, from a git URL (with and without `--checkout`),
and from a zip archive (which has no source to install from, so the bake is refused).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from bakery import ROOT

from local_extensions import pip_git_url

COOKIECUTTER = str(Path(sys.executable).with_name("cookiecutter"))


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this checkout's working tree (committed or not) with a tag."""
    repo = tmp_path_factory.mktemp("template") / "recsys-template"
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "template", cwd=repo)
    git("tag", "v9.9", cwd=repo)
    return repo


def bake_cli(tmp_path: Path, template: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`cookiecutter <template> --no-input` with a private cookiecutters_dir (clones land there)."""
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n"
    )
    command = [COOKIECUTTER, "--config-file", str(config), template, "--no-input",
               "-o", str(tmp_path / "out"), "python_version=3.11", *args]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def requirement_of(project: Path) -> str:
    spec = yaml.safe_load((project / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    (requirement,) = [r for r in pip if r.startswith("pytest-recenv")]
    return requirement


def assert_used_everywhere(project: Path, requirement: str) -> None:
    """The README, CI, noxfile and (through environment.yml) Dockerfile agree."""
    assert requirement_of(project) == requirement
    for name in ("noxfile.py", ".github/workflows/ci.yml", "README.md"):
        assert requirement in (project / name).read_text(encoding="utf-8"), name
    assert "environment.yml" in (project / "Dockerfile").read_text(encoding="utf-8")


def test_a_bake_from_a_local_checkout_installs_the_plugin_from_that_checkout(
    template_repo: Path, tmp_path: Path
) -> None:
    done = bake_cli(tmp_path, str(template_repo))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_used_everywhere(
        tmp_path / "out" / "shop-recs", f"pytest-recenv @ {template_repo.as_uri()}"
    )


def test_a_relative_local_checkout_resolves_to_an_absolute_file_url(
    template_repo: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cc'}\nreplay_dir: {tmp_path / 'r'}\n")
    command = [COOKIECUTTER, "--config-file", str(config), ".", "--no-input", "-o", "../out"]
    done = subprocess.run(command, cwd=template_repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = f"pytest-recenv @ {template_repo.as_uri()}"
    assert requirement_of(template_repo.parent / "out" / "shop-recs") == expected


def test_a_bake_from_a_git_url_pins_the_commit_it_was_baked_from(
    template_repo: Path, tmp_path: Path
) -> None:
    url = template_repo.as_uri()
    commit = git("rev-parse", "HEAD", cwd=template_repo)
    done = bake_cli(tmp_path, f"git+{url}")  # cookiecutter clones it with git, like gh:org/repo
    assert done.returncode == 0, done.stderr[-3000:]
    assert_used_everywhere(tmp_path / "out" / "shop-recs", f"pytest-recenv @ git+{url}@{commit}")


def test_a_bake_from_a_git_tag_pins_the_tag(template_repo: Path, tmp_path: Path) -> None:
    done = bake_cli(tmp_path, f"git+{template_repo.as_uri()}", "--checkout", "v9.9")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = f"pytest-recenv @ git+{template_repo.as_uri()}@v9.9"
    assert requirement_of(tmp_path / "out" / "shop-recs") == expected


def test_an_explicit_answer_wins_over_the_source(template_repo: Path, tmp_path: Path) -> None:
    done = bake_cli(tmp_path, str(template_repo), "recenv_requirement=pytest-recenv>=0.2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_used_everywhere(tmp_path / "out" / "shop-recs", "pytest-recenv>=0.2")


def test_a_zip_source_is_refused_with_the_fix_and_writes_nothing(
    template_repo: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "recsys-template.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("recsys-template/", "")  # cookiecutter wants one top-level folder first
        for path in template_repo.rglob("*"):
            if path.is_file() and ".git" not in path.relative_to(template_repo).parts:
                zf.write(path, Path("recsys-template") / path.relative_to(template_repo))
    done = bake_cli(tmp_path, str(archive))
    assert done.returncode != 0
    assert "recenv_requirement 'auto'" in done.stderr, done.stderr[-3000:]
    assert "Pass recenv_requirement='pytest-recenv>=0.1'" in done.stderr
    assert not (tmp_path / "out" / "shop-recs").exists()


def test_the_resolved_git_requirement_really_installs_pytest_recenv(
    template_repo: Path, tmp_path: Path
) -> None:
    """What the user's `recenv build` will ask uv for resolves and installs (no stand-in)."""
    done = bake_cli(tmp_path, f"git+{template_repo.as_uri()}", "--checkout", "v9.9")
    assert done.returncode == 0, done.stderr[-3000:]
    requirement = requirement_of(tmp_path / "out" / "shop-recs")
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    install = subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), requirement],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [str(venv / "bin" / "recenv"), "--help"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and "recenv" in version.stdout


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/org/recsys-template.git", "git+https://github.com/org/recsys-template.git"),
        ("git@github.com:org/recsys-template.git", "git+ssh://git@github.com/org/recsys-template.git"),
        ("ssh://git@host:2222/org/r.git", "git+ssh://git@host:2222/org/r.git"),
        ("/srv/git/recsys-template.git", "git+file:///srv/git/recsys-template.git"),
        ("git+https://host/org/r", "git+https://host/org/r"),
    ],
)  # fmt: skip
def test_git_remotes_become_urls_pip_installs(remote: str, expected: str) -> None:
    assert pip_git_url(remote) == expected
