"""Writing files atomically: a temporary file beside the target, then ``os.replace``,
so a crash leaves either the old file or the new one, never half of one."""

import json
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place,
    with the permissions an ordinary ``open`` gives (0666 less the umask: the temporary
    file's own are 0600). On any failure the temporary file is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_json(path, obj):
    """``obj`` as indented JSON at ``path``, written atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))
