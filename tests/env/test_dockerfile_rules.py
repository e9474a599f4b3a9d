"""`recenv dockerfile`: conda rules hadolint lacks, on small Dockerfiles and the template's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_recenv.env.dockerfile import check_dockerfile

DIGEST = "sha256:1c62a28916ad7a4533555a542a5410e55ea2ed2c1e29f00c8fc3f1c8add111d5"
GOOD = f"""\
ARG BASE=mambaorg/micromamba:2.0.5@{DIGEST}
FROM ${{BASE}} AS builder
COPY environment.yml ./
RUN micromamba create --yes --prefix /opt/env --file environment.yml \\
 && micromamba clean --all --yes
COPY . /src

FROM debian:bookworm-slim AS runtime
COPY --from=builder /opt/env /opt/env
ARG APP_UID=10001
USER ${{APP_UID}}
"""


def _check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return [f"{p.line}: {p.message}" for p in check_dockerfile(path)]


def test_a_dockerfile_following_the_rules_passes(tmp_path: Path) -> None:
    assert _check(tmp_path, GOOD) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            " \\\n && micromamba clean --all --yes",
            "",
            "4: 'micromamba create' without 'micromamba clean --all --yes' in the same RUN leaves "
            "the package cache in the layer; append '&& micromamba clean --all --yes'",
        ),
        (
            "USER ${APP_UID}\n",
            "",
            "8: final stage 'runtime' runs as root; add 'USER <non-root "
            "user>' (create one with useradd --system)",
        ),
        (
            "USER ${APP_UID}\n",
            "USER root\n",
            "11: final stage runs as 'root'; switch to a non-root user at the end (USER app)",
        ),
        (
            "debian:bookworm-slim",
            "debian",
            "8: base image 'debian' is not pinned; use a version "
            "tag or digest, like 'debian:<version>@sha256:<digest>'",
        ),
        (
            "debian:bookworm-slim",
            "debian:latest",
            "8: base image 'debian:latest' is not pinned; "
            "use a version tag or digest, like 'debian:<version>@sha256:<digest>'",
        ),
        (
            "ARG BASE=mambaorg",
            "ARG OTHER=mambaorg",
            "2: base image '${BASE}' comes from an ARG "
            "without a default; give the ARG a pinned default so the build is reproducible",
        ),
        (
            "COPY environment.yml ./\n",
            "COPY . /src\nCOPY environment.yml ./\n",
            "4: environment file copied after the sources (line 3); COPY environment.yml and "
            "create the env first, then COPY the sources, so a code edit does not rebuild the env "
            "layer",
        ),
    ],
    ids=[
        "install-without-clean",
        "no-user",
        "root-user",
        "untagged-base",
        "latest-base",
        "arg-without-default",
        "env-after-sources",
    ],
)
def test_each_rule_reports_its_line_and_fix(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    assert _check(tmp_path, GOOD.replace(old, new)) == [expected]


def test_a_stage_named_like_its_own_image_is_the_image_not_a_loop(tmp_path: Path) -> None:
    # 'FROM app AS app' names the image app (a FROM sees only earlier stages); the final stage
    # inherits from that stage: a finding, not a RecursionError
    assert _check(tmp_path, "FROM app AS app\nRUN true\n\nFROM app\n") == [
        "1: base image 'app' is not pinned; use a version tag or digest, like "
        "'app:<version>@sha256:<digest>'",
        "4: final stage 'app' inherits a root user from its parent stage; add 'USER <non-root>' "
        "to it",
    ]


def test_a_continuation_at_the_end_of_the_file_still_ends_its_instruction(tmp_path: Path) -> None:
    # as docker reads it: the last instruction counts (a lone 'FROM x \\' used to read as
    # "no FROM instruction", a last 'USER root \\' as nothing at all)
    line = len(GOOD.splitlines()) + 1
    assert _check(tmp_path, GOOD + "USER root \\\n") == [
        f"{line}: final stage runs as 'root'; switch to a non-root user at the end (USER app)"
    ]
    assert _check(tmp_path, "FROM scratch \\\n") == [
        "1: final stage 'scratch' runs as root; add 'USER <non-root user>' (create one with "
        "useradd --system)"
    ]


def test_a_from_without_an_image_says_so_and_nothing_else(tmp_path: Path) -> None:
    # it used to read as a base image '' that "is not pinned" and a final stage '' as root
    assert _check(tmp_path, "FROM\nRUN echo hi\n") == [
        "1: FROM names no image; write 'FROM <image>:<tag>'"
    ]
    assert _check(tmp_path, "FROM python:3.11 AS base\nFROM --platform=linux/amd64 \n") == [
        "2: FROM names no image; write 'FROM <image>:<tag>'"
    ]


def test_the_generated_projects_dockerfile_passes(tmp_path: Path) -> None:
    template = Path(__file__).parents[2] / "{{cookiecutter.project_slug}}" / "Dockerfile"
    if not template.is_file():
        pytest.skip(f"needs the template's Dockerfile; found no {template}")
    # Jinja lines are template syntax, not Dockerfile lines; keep the CPU branch's text.
    text = "\n".join(
        "" if "{%" in line else line.split("{%")[0] for line in template.read_text().splitlines()
    )
    assert _check(tmp_path, text) == []
