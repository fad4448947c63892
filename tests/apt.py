"""Debian packages the tests drive for real (Chromium, Dovecot): installed with apt-get, once, when
missing and we are root, so that `make test` on a fresh machine runs every test instead of skipping.
"""

import fcntl
import os
import subprocess
from collections.abc import Callable


def ensure_package(package: str, installed: Callable[[], bool], announce: Callable[[str], None] = print) -> str | None:
    """None once `installed()` is true (apt-get installs `package` first when it is missing and we are
    root); otherwise why it is not there. A lock keeps parallel test processes from running apt-get
    at the same time: the second one finds the package installed."""
    if installed():
        return None
    if os.geteuid() != 0:
        return f"{package} is missing and this is not root: run `apt-get install {package}`"
    with open(f"/tmp/drumbeat-apt-{package}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed():
            return None
        announce(f"{package} is missing: running `apt-get update && apt-get install -y {package}` (once)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            result = subprocess.run(
                f"apt-get update -qq && apt-get install -y -qq {package}",
                shell=True,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"apt-get install {package} failed: {exc}"
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"apt-get install {package} failed ({result.returncode}): {' / '.join(tail)}"
    if installed():
        announce(f"Installed Debian's {package}.")
        return None
    return f"apt-get installed {package}, but it is still not usable"
