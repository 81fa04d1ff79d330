"""What a manifest records beyond the data: the code that made it."""

from functools import lru_cache
from pathlib import Path

from django.conf import settings

PACKAGE_VERSION = "preflab 0.1.0"


@lru_cache(maxsize=1)
def code_version() -> str:
    """PREFLAB_CODE_VERSION when set (images set it at build time), else the git commit read from .git.

    Read from the files, not by running git, which production images do not carry. Uncommitted
    changes are not detected: set PREFLAB_CODE_VERSION when exporting from a modified tree.
    """
    if settings.PREFLAB_CODE_VERSION:
        return settings.PREFLAB_CODE_VERSION
    commit = _git_commit(Path(settings.BASE_DIR) / ".git")
    return f"{PACKAGE_VERSION} (git {commit})" if commit else PACKAGE_VERSION


def _git_commit(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        loose = git_dir / ref
        if loose.exists():
            return loose.read_text().strip()
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None
