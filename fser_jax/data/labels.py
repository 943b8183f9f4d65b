"""Label mapping between a dataset's labels and a trained run's classes.

Every mode that meets labels it was not trained on (evaluate, fine-tuning with
`train.init_from`, the learning curve's zero-shot arm) resolves them here, in
this order, per data label:

1. the user's map (`--label_map 'frustrated=anger,bored=calm'` or a JSON file
   `{"frustrated": "anger"}`; `label=` with nothing after the `=` marks a
   label as having no counterpart);
2. an identical class name (case and surrounding spaces ignored);
3. a synonym from `SYNONYMS` below (the one table of them);
4. otherwise none: the label is *unmapped*. Unmapped clips are never dropped
   silently: reports count and list them, keep them out of accuracy, and show
   what the model calls them in a rectangular confusion matrix.
"""

from __future__ import annotations

import json
import os

from fser_jax.errors import UserError

# Groups of names for one emotion. FSER's own merges are here: fear is
# anxiety, and EmoDB's boredom is FSER's calm.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("anger", "angry", "ang", "mad", "rage", "furious", "irritated",
     "irritation", "annoyed", "annoyance", "irate", "enraged", "hostile"),
    ("happiness", "happy", "hap", "joy", "joyful", "glad", "cheerful",
     "cheer", "delighted", "elated", "excited", "pleased", "amused"),
    ("sadness", "sad", "sa", "sorrow", "unhappy", "down", "low", "depressed",
     "gloomy", "sorrowful", "miserable", "grief"),
    ("anxiety", "fear", "fearful", "anxious", "afraid", "scared", "fea",
     "frightened", "terrified", "nervous", "worried", "panic"),
    ("calm", "boredom", "bored", "calmness", "relaxed", "relaxation",
     "serene", "peaceful", "tranquil"),
    ("surprise", "surprised", "sur", "astonished", "amazed"),
    ("disgust", "disgusted", "dis", "revulsion", "repulsed"),
    ("neutral", "neu", "neutrality", "plain", "normal"),
)


class LabelMapError(UserError, ValueError):
  """A label map that names classes or labels that do not exist."""


def _norm(name: str) -> str:
  return str(name).strip().lower()


def _group(name: str) -> int | None:
  n = _norm(name)
  for i, g in enumerate(SYNONYMS):
    if n in g:
      return i
  return None


def parse_user_map(spec: str | dict | None) -> dict[str, str | None]:
  """`'a=b,c=d'`, a path to a JSON object file, or a dict -> {label: class}.

  An empty right-hand side (`'a='`) maps the label to nothing.
  """
  if not spec:
    return {}
  if isinstance(spec, dict):
    items = spec.items()
  elif os.path.isfile(os.path.expanduser(spec)):
    path = os.path.expanduser(spec)
    try:
      with open(path, encoding="utf-8-sig") as f:
        obj = json.load(f)
    except (OSError, ValueError) as e:
      raise LabelMapError(f"--label_map {path}: not a readable JSON object "
                          f"({e})") from None
    if not isinstance(obj, dict):
      raise LabelMapError(f"--label_map {path}: expected a JSON object "
                          '{"data label": "model class", ...}')
    items = obj.items()
  else:
    items = []
    for part in str(spec).split(","):
      if not part.strip():
        continue
      if "=" not in part:
        raise LabelMapError(
            f"--label_map: {part.strip()!r} is not 'data_label=model_class' "
            "(pairs separated by commas, or a JSON file)")
      a, b = part.split("=", 1)
      items.append((a, b))
  return {a.strip(): (b.strip() or None) if b is not None else None
          for a, b in items}


def resolve(data_labels, model_classes, user_map=None) -> dict:
  """Maps each data label to a model class (or None).

  Args:
    data_labels: the labels found in the data.
    model_classes: the run's class names.
    user_map: {data label: model class or None}, from `parse_user_map`.

  Returns:
    {"map": {data label: class or None}, "how": {data label: 'user' |
    'identical' | 'synonym' | 'none'}}.

  Raises:
    LabelMapError: the user map names a class the model does not have or a
      label the data does not have.
  """
  data_labels = list(dict.fromkeys(data_labels))
  classes = list(model_classes)
  user_map = dict(user_map or {})
  by_norm = {_norm(c): c for c in classes}
  data_norm = {_norm(d): d for d in data_labels}
  for label, cls in user_map.items():
    if _norm(label) not in data_norm:
      raise LabelMapError(
          f"--label_map names the data label {label!r}, which the data does "
          f"not have (its labels: {', '.join(sorted(data_labels))})")
    if cls is not None and _norm(cls) not in by_norm:
      raise LabelMapError(
          f"--label_map maps {label!r} to {cls!r}, which is not a class of "
          f"the run (its classes: {', '.join(classes)})")
  user = {data_norm[_norm(k)]: (None if v is None else by_norm[_norm(v)])
          for k, v in user_map.items()}
  out, how = {}, {}
  for label in data_labels:
    if label in user:
      out[label], how[label] = user[label], "user"
    elif _norm(label) in by_norm:
      out[label], how[label] = by_norm[_norm(label)], "identical"
    else:
      g = _group(label)
      match = [c for c in classes if g is not None and _group(c) == g]
      out[label] = match[0] if match else None
      how[label] = "synonym" if match else "none"
  return {"map": out, "how": how}


def describe(resolved: dict) -> str:
  """One line per data label: `angry -> anger (synonym)`."""
  lines = []
  for label, cls in resolved["map"].items():
    how = resolved["how"][label]
    lines.append(f"  {label} -> {cls} ({how})" if cls is not None
                 else f"  {label} -> (no counterpart: counted, not scored)")
  return "\n".join(lines)
