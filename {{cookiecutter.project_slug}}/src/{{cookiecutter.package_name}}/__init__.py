{{ (cookiecutter.project_name ~ ": " ~ cookiecutter.description)|py_str }}

from __future__ import annotations

__version__ = "0.1.0"
PROJECT_NAME = {{ cookiecutter.project_name|py_str }}
ENV_NAME = {{ cookiecutter.env_name|py_str }}
