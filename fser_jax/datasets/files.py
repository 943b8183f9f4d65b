"""File-system side of the `fser` builder: finding clips and reading own-data
folders and manifests. (Kept out of fser.py, whose `os` TFDS' builder tests
forbid: everything here works on local paths, which librosa needs anyway.)"""

from __future__ import annotations

import collections
import csv
import hashlib
import os

from fser_jax.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif",
                    ".au", ".opus")


def has_content(root: str) -> bool:
  return os.path.isdir(root) and bool(os.listdir(root))


def walk_audio(root: str):
  """Relative '/'-paths of audio files under root, sorted."""
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for f in filenames:
      if f.lower().endswith(AUDIO_EXTENSIONS) and not f.startswith("._"):
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        out.append(rel.replace(os.sep, "/"))
  return sorted(out)


def extracted_roots(root: str, dl_manager) -> list[str]:
  """The corpus folder itself and, for each archive in it, its extraction
  (into TFDS's extraction dir: the manual dir stays untouched)."""
  archives = sorted(f for f in os.listdir(root)
                    if f.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz")))
  if not archives or walk_audio(root):
    return [root]  # extracted contents present: archives are not read again
  return [os.fspath(dl_manager.extract(os.path.join(root, a))) for a in archives]


# --- own data -------------------------------------------------------------------
MANIFEST_COLUMNS = ("path", "label", "speaker", "gender", "corpus", "language")


def parse_columns(spec) -> dict[str, str]:
  """`'path=file,label=emotion,speaker=talker'` (or a dict) -> {our column:
  the manifest's column}, names lower-cased; '' -> {}."""
  if not spec:
    return {}
  items = (spec.items() if isinstance(spec, dict) else
           [p.split("=", 1) if "=" in p else (p, None)
            for p in str(spec).split(",") if p.strip()])
  out = {}
  for ours, theirs in items:
    ours = ours.strip().lower()
    if theirs is None or not theirs.strip() or ours not in MANIFEST_COLUMNS:
      raise DataError(
          f"--columns {spec}: expected OURS=THEIRS pairs with OURS one of "
          f"{', '.join(MANIFEST_COLUMNS)} (e.g. path=file,label=emotion,"
          "speaker=talker)")
    out[ours] = theirs.strip().lower()
  return out


def _columns_hint(header: list[str]) -> str:
  """A --columns value guessed from a manifest's header (for the error)."""
  guesses = {"path": ("file", "filename", "wav", "audio", "filepath",
                      "file_path", "audio_path"),
             "label": ("emotion", "class", "category", "target", "emo"),
             "speaker": ("talker", "spk", "speaker_id", "actor", "subject")}
  pairs = [f"{k}={h}" for k, names in guesses.items() if k not in header
           for h in header if h in names][:3]
  return ",".join(pairs) or "path=COLUMN,label=COLUMN"


def scan_own(path: str, columns="") -> tuple[list[dict], list[str]]:
  """Entries of an own dataset: a folder with one subfolder per label, or a CSV
  manifest with columns path,label and optional speaker, gender, corpus,
  language (relative paths are relative to the manifest). `columns` maps
  those names to the manifest's own (`'path=file,label=emotion'`, see
  parse_columns).

  Returns:
    (entries sorted by filename, problems found while scanning).
  """
  path = os.path.abspath(os.path.expanduser(path))
  colmap = parse_columns(columns)
  problems, entries = [], []
  if os.path.isfile(path) and path.lower().endswith(".csv"):
    base = os.path.dirname(path)
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark; the csv
    # module takes \r\n and \n alike.
    try:
      with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
      raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte "
                      f"{e.start}); save the manifest as CSV UTF-8") from None
    header = [h.strip().lower() for h in (rows[0] if rows else [])]
    absent = sorted(v for v in colmap.values() if v not in header)
    if absent:
      raise DataError(f"{path}: --columns names {', '.join(absent)}, which "
                      f"the manifest does not have (its columns: "
                      f"{','.join(header)})")
    # Our name for each of the manifest's columns (a mapped column replaces
    # one of the same name).
    rename = {v: k for k, v in colmap.items()}
    header = [rename.get(h, "" if h in colmap and h not in rename else h)
              for h in header]
    if not {"path", "label"} <= set(header):
      seen = [h.strip().lower() for h in rows[0]] if rows else []
      raise DataError(f"{path}: a manifest needs the columns path,label; it "
                      f"has {','.join(seen) or 'none'}. Name yours with "
                      f"--columns {_columns_hint(seen)}")
    seen = {}
    for i, values in enumerate(rows[1:], start=2):
      if not any(v.strip() for v in values):
        continue  # blank line
      row = dict(zip(header, values))
      rel, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
      if not rel or not label:
        problems.append(f"{path} line {i}: empty path or label")
        continue
      if rel in seen:
        if seen[rel] != label:
          raise DataError(f"{path} line {i}: {rel} is listed twice with "
                          f"different labels ({seen[rel]!r}, {label!r})")
        problems.append(f"{path} line {i}: {rel} listed again (kept once)")
        continue
      seen[rel] = label
      abspath = rel if os.path.isabs(rel) else os.path.join(base, rel)
      if not os.path.exists(abspath):
        problems.append(f"{path} line {i}: {rel}: no such file")
        continue
      entries.append(dict(
          abspath=abspath, filename=rel.replace(os.sep, "/"), label=label,
          speaker=(row.get("speaker") or "").strip(),
          gender=(row.get("gender") or "").strip(),
          corpus=(row.get("corpus") or "own").strip(),
          language=(row.get("language") or "").strip()))
  elif os.path.isdir(path):
    labels = sorted(d for d in os.listdir(path)
                    if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    for label in labels:
      for rel in walk_audio(os.path.join(path, label)):
        entries.append(dict(
            abspath=os.path.join(path, label, rel), filename=f"{label}/{rel}",
            label=label, speaker="", gender="", corpus="own", language=""))
  else:
    raise DataError(
        f"{path}: own data must be a folder with one subfolder per label or a "
        ".csv manifest with columns path,label[,speaker]")
  if not entries:
    raise DataError(f"{path}: no audio files found (extensions "
                     f"{', '.join(AUDIO_EXTENSIONS)})")
  spellings = collections.defaultdict(set)
  for e in entries:
    spellings[e["label"].lower()].add(e["label"])
  clash = sorted(sorted(v) for v in spellings.values() if len(v) > 1)
  if clash:
    raise DataError(f"{path}: labels that differ only in case: "
                    + "; ".join(" / ".join(repr(x) for x in c) for c in clash)
                    + ". Spell each label one way.")
  counts = collections.Counter(e["label"] for e in entries)
  if len(counts) < 2:
    raise DataError(f"{path}: found only the label(s) {sorted(counts)}; "
                     "classification needs at least two")
  entries.sort(key=lambda e: e["filename"])
  return entries, problems


def fingerprint(entries: list[dict]) -> str:
  """A digest of what a build of `entries` depends on: each clip's metadata
  (label, speaker, gender, corpus, language, file name) and its file's size
  and modification time (a missing file counts as such)."""
  h = hashlib.sha1()
  for e in entries:
    try:
      st = os.stat(e["abspath"])
      stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
      stamp = "missing"
    h.update("|".join([e["filename"], e["label"], e["speaker"], e["gender"],
                       e["corpus"], e["language"], stamp]).encode())
    h.update(b"\n")
  return h.hexdigest()


def own_config_args(path: str, sample_rate: int = 16000, columns="") -> dict:
  """A builder config for the user's data at `path` (folder or manifest).

  Its name carries a digest of the absolute path, the label set, the rate and
  `fingerprint(entries)` (every clip's metadata, size and modification time):
  add, remove, relabel or touch a clip, or add a manifest column, and the name
  changes, so the data is built anew instead of a stale build being reused.
  """
  entries, _ = scan_own(path, columns)
  labels = tuple(sorted({e["label"] for e in entries}))
  abspath = os.path.abspath(os.path.expanduser(path))
  digest = hashlib.sha1(
      f"{abspath}|{','.join(labels)}|{sample_rate}|{fingerprint(entries)}"
      .encode()).hexdigest()[:10]
  return dict(name=f"own_{digest}", labels=labels, path=abspath,
              columns=str(columns or ""), sample_rate=sample_rate,
              description=f"Own data from {abspath}")


def write_manifest(out_dir: str, rows,
                   columns=("path", "label", "speaker", "gender")) -> str:
  """Writes OUT/manifest.csv from `rows` of (path, label, speaker, gender),
  under the header `columns` (scan_own reads the default as it is, another
  through its column map); returns its path."""
  path = os.path.join(out_dir, "manifest.csv")
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(list(columns))
    w.writerows(rows)
  return path
