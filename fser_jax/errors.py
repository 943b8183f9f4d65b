"""The one base class of errors that are the user's to fix.

Every module's user-facing error (a bad audio file, a config value, a missing
dataset, a workdir of another run, ...) derives from `UserError`, and
launch.py catches that one type: it prints the message, which names the file,
key or folder at fault and what to do, as one `error: ...` line and exits 2.
This module imports nothing from fser_jax, so every module can import it
(the arrows of the import graph keep pointing down).
"""


class UserError(Exception):
  """A fault in the user's input, config or files; the message says which
  and what to do."""


class DataError(UserError, ValueError):
  """A dataset, folder or manifest that cannot be used as asked (no clips,
  one label, a missing column, an empty split, a rate mismatch)."""


class CheckpointError(UserError, RuntimeError):
  """A workdir without a usable checkpoint, or one of another model."""


class Interrupted(Exception):
  """Training stopped by a signal after saving its checkpoint; args are
  (message, signal number). Not an error: launch.py exits 128 + signal."""
