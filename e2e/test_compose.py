"""docker-compose.yml is a valid Compose file (checked offline, no engine)."""

import os
import shutil
import subprocess

import pytest

from e2elib import REPO


def test_compose_config_valid():
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("docker-compose is not installed")
    path = os.path.join(REPO, "docker-compose.yml")
    assert os.path.isfile(path), "no docker-compose.yml at the repository root"
    r = subprocess.run([exe, "-f", path, "config", "-q"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, "docker-compose config -q: exit %d\n%s%s" % (
        r.returncode, r.stdout, r.stderr)
