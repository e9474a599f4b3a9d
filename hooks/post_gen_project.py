"""Drop the parts the answers did not ask for, write the replay file, print next steps.

Runs inside the freshly generated project folder. Conditional *files* are removed here, by
path, from one table; conditional *lines* inside files are Jinja if-blocks.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

CONTEXT: dict = json.loads({{ cookiecutter | jsonify | py_str }})  # noqa: E501
PACKAGE = CONTEXT["package_name"]
# recenv_requirement as the files get it: "auto" resolved to this template's source (the
# replay file keeps the answer "auto", so a re-bake resolves it anew).
RESOLVED: dict = json.loads({{ cookiecutter | recenv_resolved | jsonify | py_str }})  # noqa: E501
RECENV_REQUIREMENT = RESOLVED["recenv_requirement"]

# Parts an answer switches off: cookiecutter.json's `_optional_parts` (the pre-gen hook reads the
# same table to refuse a re-bake that would delete files it did not write).
OPTIONAL_PARTS: dict[tuple[str, object], tuple[str, ...]] = {
    (part["answer"], part["off"]): tuple(p.format(package=PACKAGE) for p in part["paths"])
    for part in CONTEXT["_optional_parts"]
}
# No file is GPU-only: the CUDA image is the same Dockerfile rendered for compute=cuda12, and a
# CPU project keeps its GPU tests (they skip with a reason on CPU machines, run on a GPU box).

# Keys of the context that are cookiecutter's bookkeeping about this machine, not answers.
NOT_REPLAYED = ("_output_dir", "_repo_dir", "_checkout")


def remove(root: Path, relative: str) -> None:
    path = root / relative
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_replay_file(root: Path) -> None:
    """`.cookiecutter.json`: `cookiecutter --replay-file .cookiecutter.json <template>` regenerates
    this project, and cruft-style updates diff against it."""
    answers = {k: v for k, v in CONTEXT.items() if k not in NOT_REPLAYED}
    text = json.dumps({"cookiecutter": answers}, indent=2, ensure_ascii=False, sort_keys=True)
    (root / ".cookiecutter.json").write_text(text + "\n", encoding="utf-8")


def install_line() -> str:
    """`python -m pip install ...` for whichever of nox and the recenv CLI is not on PATH, else "".

    The next steps call both by name; where they are missing the user installs them first, the
    way the generated README's quickstart does.
    """
    wanted = {"nox": "nox", "recenv": RECENV_REQUIREMENT}
    missing = {command: req for command, req in wanted.items() if shutil.which(command) is None}
    if not missing:
        return ""
    python = "python" if shutil.which("python") or not shutil.which("python3") else "python3"
    command = shlex.join([python, "-m", "pip", "install", *missing.values()])
    return f"  {command}   # once: {' and '.join(missing)} not found on PATH\n"


def main() -> int:
    root = Path.cwd()
    for (answer, value), paths in OPTIONAL_PARTS.items():
        if CONTEXT[answer] == value:
            for relative in paths:
                remove(root, relative)
    write_replay_file(root)
    env_name = CONTEXT["env_name"]
    print(
        f"\nCreated {CONTEXT['project_slug']}/ (environment {env_name}). Next steps:\n"
        f"  cd {CONTEXT['project_slug']}\n"
        f"{install_line()}"
        "  recenv build                  # or: conda env create -f environment.yml\n"
        "  recenv run -- python -m pytest\n"
        f"  recenv run -- python -m {PACKAGE} demo\n"
        "  nox -l                        # every task: tests, gpu_tests, lint, env, lock, demo\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
